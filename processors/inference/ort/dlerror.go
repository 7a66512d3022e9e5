//go:build cgo

package ort

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// tryLoad opens path as the CUDA provider would and returns dlerror's message, or NULL
// when it loads (the handle is closed again).
static const char *tryLoad(const char *path) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		return dlerror();
	}
	dlclose(h);
	return NULL;
}
*/
import "C"

import "unsafe"

// loadError says why the dynamic loader cannot load path ("libcublasLt.so.13: cannot
// open shared object file: ..."), or "" when it can. ONNX Runtime writes that reason only
// to its own log, so the provider's failure is diagnosed again here for the error.
func loadError(path string) string {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	if msg := C.tryLoad(p); msg != nil {
		return C.GoString(msg)
	}
	return ""
}
