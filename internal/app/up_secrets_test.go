package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
)

// TestUpLogsNoDevelopmentKey runs `studio up` with auth on: the development key reaches
// the banner callback, and no log line carries it.
func TestUpLogsNoDevelopmentKey(t *testing.T) {
	var sink logSink
	cfg := &Config{
		DataDir: t.TempDir(), NATSListen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), HTTPListen: "127.0.0.1:0",
		Replicas: 1, CacheDir: assets.DefaultDir(), Device: "cpu", Sessions: 1, Models: "isnet@small",
		Concurrency: 1, MaxUpload: imageio.DefaultMaxBytes, MaxPixels: imageio.DefaultMaxPixels,
		DrainTimeout: 10 * time.Second, Stages: "ingest", LogLevel: "info", Worker: "e2e", Auth: "on",
	}
	ctx, cancel := context.WithCancel(context.Background())
	tokens := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- UpWithToken(ctx, cfg, jsonLog(&sink), func(_, tok string) { tokens <- tok }) }()
	var token string
	select {
	case token = <-tokens:
	case err := <-done:
		t.Fatalf("Up failed: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("Up did not start within 2 minutes")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Up returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Up did not stop within 60s")
	}
	if len(token) < 16 {
		t.Fatalf("the banner got no development key: %q", token)
	}
	var up map[string]any
	for _, l := range sink.lines(t) {
		if l["message"] == "studio is up" {
			up = l
		}
	}
	if up == nil || up["dev_key_issued"] != true {
		t.Fatalf(`no "studio is up" line saying a key was issued: %v`, up)
	}
	if out := sink.buf.String(); strings.Contains(out, token) {
		t.Fatalf("a log line carries the development key:\n%s", out)
	}
}
