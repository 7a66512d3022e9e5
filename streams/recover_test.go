package streams_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/streams"
)

func TestRecover(t *testing.T) {
	batch := []*streams.Msg{{Subject: "a"}, {Subject: "b"}}
	tests := []struct {
		name    string
		handler streams.BatchHandlerFunc
		wantErr string // "" when results pass through
		wantLog string
	}{
		{
			name:    "a panic fails every message of the batch transiently and logs the stack",
			handler: func(context.Context, []*streams.Msg) []streams.Result { panic("simulated crash") },
			wantErr: "handler panicked: simulated crash",
			wantLog: "recover_test.go",
		},
		{
			name:    "too few results fail the whole batch",
			handler: func(context.Context, []*streams.Msg) []streams.Result { return make([]streams.Result, 1) },
			wantErr: "handler returned 1 results for 2 messages",
		},
		{
			name: "results of a well-behaved handler pass through",
			handler: func(_ context.Context, b []*streams.Msg) []streams.Result {
				return []streams.Result{{Outputs: []streams.Output{{Subject: "x"}}}, {Err: errors.New("kept")}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedBuffer
			l := logrus.New()
			l.SetOutput(&logs)
			res := streams.Recover(l)(tt.handler).Handle(context.Background(), batch)
			if len(res) != len(batch) {
				t.Fatalf("%d results for %d messages", len(res), len(batch))
			}
			if tt.wantErr == "" {
				if len(res[0].Outputs) != 1 || res[1].Err == nil || res[1].Err.Error() != "kept" {
					t.Fatalf("results changed: %+v", res)
				}
				return
			}
			for i, r := range res {
				if r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr) || streams.IsPermanent(r.Err) {
					t.Errorf("result %d: %v; want a transient error containing %q", i, r.Err, tt.wantErr)
				}
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks the stack (%q):\n%s", tt.wantLog, logs.String())
			}
			if strings.Contains(tt.wantErr, "panicked") && !errors.Is(res[0].Err, streams.ErrPanic) {
				t.Errorf("%v does not wrap ErrPanic", res[0].Err)
			}
		})
	}
}
