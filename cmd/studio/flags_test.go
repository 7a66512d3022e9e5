package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"slices"
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
	lines := strings.Split(usage, "\n")
	for _, c := range commands {
		var mine []string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "studio" && f[1] == c.name {
				mine = append(mine, l)
			}
		}
		if len(mine) == 0 {
			t.Errorf("the usage text does not name %q", c.name)
		}
		for _, v := range c.verbs {
			if !slices.ContainsFunc(mine, func(l string) bool { return strings.Contains(l, v) }) {
				t.Errorf("the usage text does not name %s %s", c.name, v)
			}
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{"flags after the ids are parsed", []string{"a", "b", "--json"}, []string{"a", "b"}, true},
		{"flags before and between the ids are parsed", []string{"--json", "a", "--limit", "3", "b"}, []string{"a", "b"}, true},
		{"after -- everything is an id", []string{"a", "--", "--json"}, []string{"a", "--json"}, false},
		{"no ids", []string{"--json"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			asJSON := fs.Bool("json", false, "")
			fs.Int("limit", 0, "")
			pos, err := parseInterspersed(fs, tc.args)
			if err != nil || !slices.Equal(pos, tc.wantPos) || *asJSON != tc.wantJSON {
				t.Fatalf("got %q json=%v err=%v, want %q json=%v", pos, *asJSON, err, tc.wantPos, tc.wantJSON)
			}
		})
	}
}
