package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

// TestEveryFlagSetParses asks every command and verb for its help: each builds its
// whole flag set, so a flag registered twice (a panic at registration) or a command
// whose flags fail to parse fails here, without a server.
func TestEveryFlagSetParses(t *testing.T) {
	ctx := context.Background()
	// The flag sets print their help on stderr: keep it out of the test's output.
	stderr := os.Stderr
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stderr = null
		defer func() { os.Stderr = stderr; null.Close() }()
	}
	for _, c := range commands {
		verbs := c.verbs
		if len(verbs) == 0 {
			verbs = []string{""}
		}
		for _, verb := range verbs {
			args := []string{"-h"}
			name := "studio " + c.name
			if verb != "" {
				args = []string{verb, "-h"}
				name += " " + verb
			}
			t.Run(name+" -h parses its flags", func(t *testing.T) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s -h panicked: %v", name, r)
					}
				}()
				var out bytes.Buffer
				if err := c.run(ctx, args, &out); !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("%s -h: %v, want flag.ErrHelp", name, err)
				}
			})
		}
	}
}

// TestUsageNamesEveryCommand keeps the usage text and the command table together.
func TestUsageNamesEveryCommand(t *testing.T) {
	for _, c := range commands {
		if !strings.Contains(usage, "\n  studio "+c.name+" ") {
			t.Errorf("the usage text does not name %q", c.name)
		}
		for _, v := range c.verbs {
			if !strings.Contains(usage, v) {
				t.Errorf("the usage text does not name %s %s", c.name, v)
			}
		}
	}
}
