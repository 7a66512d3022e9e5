package main

import (
	"bytes"
	"strings"
	"testing"
)

// verbOf, which every command with verbs (jobs, rollout, users, webhooks) starts with:
// help prints the usage, no verb or an unknown one is an error naming the command and
// showing the usage, and a known verb gets a flag set named for both.
func TestVerbOfReadsTheVerbOrSaysWhatIsWrong(t *testing.T) {
	const usage = "usage: studio things add|remove"
	verbs := []string{"add", "remove"}
	for _, tc := range []struct {
		name       string
		args       []string
		verb, errs string
		printed    bool
	}{
		{"a known verb", []string{"remove", "--x"}, "remove", "", false},
		{"help", []string{"help"}, "", "", true},
		{"-h", []string{"-h"}, "", "", true},
		{"no verb", nil, "", usage, false},
		{"an unknown verb", []string{"rename"}, "", `unknown things command "rename"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			verb, fs, done, err := verbOf("things", verbs, tc.args, usage, &out)
			if verb != tc.verb || done != (tc.verb == "") {
				t.Errorf("verb %q, done %v; want %q", verb, done, tc.verb)
			}
			if tc.errs == "" && err != nil || tc.errs != "" && (err == nil || !strings.Contains(err.Error(), tc.errs) || !strings.Contains(err.Error(), usage)) {
				t.Errorf("error %v, want one containing %q and the usage", err, tc.errs)
			}
			if printed := strings.Contains(out.String(), usage); printed != tc.printed {
				t.Errorf("printed %q", out.String())
			}
			if tc.verb != "" && (fs == nil || fs.Name() != "studio things "+tc.verb) {
				t.Errorf("flag set %v, want one named studio things %s", fs, tc.verb)
			}
		})
	}
}
