package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, dockerfile, want string // want: substring of the error; empty means clean
	}{
		{"a clean multi-stage file passes", "ARG BASE=debian:bookworm-slim\nFROM golang:1.26 AS build\nRUN true\nFROM ${BASE}\nCOPY --from=build /etc/hostname /x\nENTRYPOINT [\"x\"]\n", ""},
		{"an undeclared ARG in FROM fails", "FROM ${NOPE}\n", "UndefinedArgInFrom"},
		{"mixed keyword casing fails", "FROM debian:bookworm-slim as base\nRUN true\n", "FromAsCasing"},
		{"a shell-form ENTRYPOINT fails", "FROM debian:bookworm-slim\nENTRYPOINT studio up\n", "JSONArgsRecommended"},
		{"a secret in an ARG fails", "FROM debian:bookworm-slim\nARG DB_PASSWORD\nRUN true\n", "SecretsUsedInArgOrEnv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(f, []byte(tt.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := check(f, buildArgs{})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one mentioning %s", err, tt.want)
			}
		})
	}
}
