package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/creativeai-studio/studio/internal/blob"
)

func TestUnavailableTellsAnOutageFromAnAnswer(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:9/b/k", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"body cut short", io.ErrUnexpectedEOF, true},
		{"503 SlowDown", minio.ErrorResponse{StatusCode: http.StatusServiceUnavailable, Code: "SlowDown"}, true},
		{"500 InternalError", minio.ErrorResponse{StatusCode: http.StatusInternalServerError, Code: "InternalError"}, true},
		{"502 from a proxy", minio.ErrorResponse{StatusCode: http.StatusBadGateway}, true},
		{"404 NoSuchKey", minio.ErrorResponse{StatusCode: http.StatusNotFound, Code: minio.NoSuchKey}, false},
		{"403 AccessDenied", minio.ErrorResponse{StatusCode: http.StatusForbidden, Code: "AccessDenied"}, false},
		{"400 InvalidArgument", minio.ErrorResponse{StatusCode: http.StatusBadRequest, Code: "InvalidArgument"}, false},
		{"cancelled", &url.Error{Op: "Get", URL: "http://x", Err: context.Canceled}, false},
		{"the caller's deadline", &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := unavailable(tt.err); got != tt.want {
			t.Errorf("%s: unavailable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestCallsWaitOutAnOutage kills a real MinIO (kill -9) and starts it again on the same
// port and data: a Get and a Put begun while it was down succeed once it is back; a
// missing key is answered at once; a ctx that ends during the outage ends the wait; a
// wait longer than RetryFor fails wrapping blob.ErrUnavailable.
func TestCallsWaitOutAnOutage(t *testing.T) {
	bin := minioBin(t)
	srv := &minioServer{bin: bin, dir: t.TempDir(), user: "outage", pass: "outage-secret-key", t: t}
	srv.port = freePort(t)
	srv.start()
	t.Cleanup(srv.kill)

	ctx := t.Context()
	cfg := Config{Endpoint: srv.addr(), Bucket: "outage", AccessKey: srv.user, SecretKey: srv.pass,
		CreateBucket: true, RetryFor: 30 * time.Second}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("outage "), 1000)
	if _, err := s.Put(ctx, "kept", bytes.NewReader(want), int64(len(want)), "text/plain"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if _, _, err := s.Get(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want blob.ErrNotFound", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a missing key took %s: it was retried", d)
	}

	srv.kill()
	down := 3 * time.Second
	type result struct {
		what string
		err  error
		took time.Duration
	}
	results := make(chan result, 2)
	began := time.Now()
	go func() {
		rc, _, err := s.Get(ctx, "kept")
		if err == nil {
			var got []byte
			got, err = io.ReadAll(rc)
			rc.Close()
			if err == nil && !bytes.Equal(got, want) {
				err = fmt.Errorf("read %d bytes, not what was put", len(got))
			}
		}
		results <- result{"Get", err, time.Since(began)}
	}()
	go func() {
		_, err := s.Put(ctx, "during", bytes.NewReader(want), int64(len(want)), "text/plain")
		results <- result{"Put", err, time.Since(began)}
	}()

	// While it is down: a ctx that ends ends the wait, and a short bound gives up.
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = s.Stat(short, "kept")
	cancel()
	if !errors.Is(err, blob.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat under a 1s ctx while the server is down: %v, want blob.ErrUnavailable and context.DeadlineExceeded", err)
	}
	impatient := *s
	impatient.retryFor = 500 * time.Millisecond
	if _, err := impatient.Stat(ctx, "kept"); !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Stat with RetryFor 500ms while the server is down: %v, want blob.ErrUnavailable", err)
	}

	time.Sleep(time.Until(began.Add(down)))
	srv.start()
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Errorf("%s begun while the server was down: %v", r.what, r.err)
			continue
		}
		if r.took < down {
			t.Errorf("%s took %s, less than the %s outage", r.what, r.took, down)
		}
		t.Logf("%s begun while the server was down returned after %s", r.what, r.took.Round(time.Millisecond))
	}
	if info, err := s.Stat(ctx, "during"); err != nil || info.Size != int64(len(want)) {
		t.Errorf("Stat of the key put during the outage: %+v, %v", info, err)
	}
}

// minioServer is a MinIO process this test can kill -9 and start again on the same port
// and data dir.
type minioServer struct {
	t                    *testing.T
	bin, dir, user, pass string
	port                 int
	cmd                  *exec.Cmd
}

func (m *minioServer) addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

func (m *minioServer) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "server", filepath.Join(m.dir, "data"), "--address", m.addr(),
		"--console-address", "127.0.0.1:"+strconv.Itoa(freePort(m.t)))
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.pass,
		"MINIO_BROWSER=off", "MINIO_CI_CD=on", "MINIO_UPDATE=off")
	log, err := os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer log.Close()
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start MinIO: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + m.addr() + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(m.dir, "minio.log"))
	m.t.Fatalf("MinIO at %s was not ready within a minute; its log:\n%s", m.addr(), b)
}

func (m *minioServer) kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
}

// minioBin returns the MinIO binary scripts/minio.sh caches, or skips t.
func minioBin(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("STUDIO_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "studio")
	}
	bins, _ := filepath.Glob(filepath.Join(cache, "bin", "minio-*"))
	for _, b := range bins {
		if filepath.Ext(b) == "" || !bytes.Contains([]byte(filepath.Base(b)), []byte(".partial")) {
			return b
		}
	}
	msg := "no MinIO binary in " + filepath.Join(cache, "bin") + "; `scripts/minio.sh start` builds it"
	if os.Getenv("STUDIO_REQUIRE_S3") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
