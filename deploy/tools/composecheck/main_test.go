package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAndCheck(t *testing.T) {
	tests := []struct {
		name, compose, want string // want: substring of the first problem; empty means valid
	}{
		{"a pinned service with defaults passes", "services:\n  web:\n    image: ${IMAGE:-nginx:1.27}\n", ""},
		{"an unknown key fails the schema", "services:\n  web:\n    image: nginx:1.27\n    stop_grace_periodd: 30s\n", "stop_grace_periodd"},
		{"a dependency on a missing service fails", "services:\n  web:\n    image: nginx:1.27\n    depends_on: [db]\n", "db"},
		{"a latest tag fails", "services:\n  web:\n    image: nginx:latest\n", `tag "latest"`},
		{"an untagged image fails", "services:\n  web:\n    image: nginx\n", "no tag"},
		{"a missing bind mount source fails", "services:\n  web:\n    image: nginx:1.27\n    volumes: [./missing.conf:/etc/x.conf:ro]\n", "missing.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(f, []byte(tt.compose), 0o644); err != nil {
				t.Fatal(err)
			}
			var problems []string
			p, err := load([]string{f})
			if err != nil {
				problems = append(problems, err.Error())
			} else {
				problems = check(p)
			}
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Errorf("unexpected: %q", problems)
			case tt.want != "" && (len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), tt.want)):
				t.Errorf("problems %q, want one mentioning %s", problems, tt.want)
			}
		})
	}
}
