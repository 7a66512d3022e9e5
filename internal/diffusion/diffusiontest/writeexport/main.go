// Command writeexport writes the tiny test Stable Diffusion export (synthetic random
// weights; see diffusiontest) and a manifest serving it as tiny-sd@test into a model
// folder, for tests that run a studio binary (scripts/browser-test.sh):
//
//	go run ./internal/diffusion/diffusiontest/writeexport DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

const manifest = `name: tiny-sd
version: test
task: generate
license: test-only (synthetic random weights, draws nothing)
source:
  export: tiny-sd
diffusion:
  steps: 4
  guidance: 7.5
  width: 64
  height: 64
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: writeexport DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := diffusiontest.WriteExport(filepath.Join(dir, "tiny-sd"), diffusiontest.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, "tiny-sd.yaml"), []byte(manifest), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
