// Command writeadain writes the synthetic arbitrary-style test graph and its manifest
// (adain@test; see styletest) into a model folder, for tests that run a studio binary
// (scripts/browser-test.sh):
//
//	go run ./internal/models/styletest/writeadain DIR
package main

import (
	"fmt"
	"os"

	"github.com/creativeai-studio/studio/internal/models/styletest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: writeadain DIR")
		os.Exit(2)
	}
	if err := styletest.WriteAdaIN(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
