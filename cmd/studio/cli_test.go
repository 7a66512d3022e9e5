package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/bench"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// These tests run the built binary, as a user would, for every command and verb: the
// server processes (ingest, worker, up, sink) against an embedded NATS server on a
// free port, the clients (users, jobs, submit, models, fetch, migrate, bench) against
// them. They assert exit status, output and the state the next command sees. Nothing
// here downloads: every process runs with a proxy that refuses connections, the model
// is a 1x1 identity convolution imported with `studio models import-ncnn`, and what
// needs cached assets (the ONNX Runtime library, the web assets) or ClickHouse skips
// without them unless STUDIO_REQUIRE_ASSETS=1 / STUDIO_REQUIRE_CLICKHOUSE=1.

var built struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// studioBinary builds cmd/studio once per test run and returns its path.
func studioBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "studio-cli-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "studio")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// testEnv is the environment of every process these tests start: this one's without
// its STUDIO_* settings (a developer's STUDIO_TOKEN or STUDIO_NATS_URL must not leak
// in), the asset cache pinned, downloads refused, and extra on top.
func testEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "STUDIO_"), strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "no_proxy"):
			continue
		}
		env = append(env, kv)
	}
	const refuse = "http://127.0.0.1:9" // nothing listens: a download fails at once
	env = append(env, "STUDIO_CACHE="+assets.DefaultDir(), "HTTP_PROXY="+refuse, "HTTPS_PROXY="+refuse,
		"http_proxy="+refuse, "https_proxy="+refuse, "npm_config_offline=true")
	return append(env, extra...)
}

// result is how a finished command ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s", r.code, tail(r.stdout, 3000), tail(r.stderr, 3000))
}

// studio runs the binary to completion. A panic, or a command still running after two
// minutes, fails the test.
func studio(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, studioBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, env
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("studio %s did not finish within 2 minutes\n%s", strings.Join(args, " "), r)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("studio %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine 1 [") {
		t.Fatalf("studio %s panicked\n%s", strings.Join(args, " "), r)
	}
	return r
}

// expect checks the exit status and that stdout holds each of want.
func expect(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\n%s", r.code, code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("stdout lacks %q\n%s", w, r)
		}
	}
}

// syncBuffer collects a running process's output; safe to read while it writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a studio process running in the background.
type daemon struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error // set when done is closed
	term           sync.Once
}

// spawn starts studio with args in the background.
func spawn(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: strings.Join(args[:min(3, len(args))], " "), cmd: exec.Command(studioBinary(t), args...), done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr, d.cmd.Env = &d.stdout, &d.stderr, env
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	return d
}

// startDaemon starts studio with args. At t's cleanup it sends SIGTERM and requires a
// clean exit (status 0) within 40 seconds; on failure it logs the process's output.
func startDaemon(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := spawn(t, env, args...)
	t.Cleanup(func() { d.finish(t) })
	return d
}

// finish stops the daemon at the end of t and reports how it ended.
func (d *daemon) finish(t testing.TB) {
	if err := d.stop(40 * time.Second); err != nil {
		t.Errorf("studio %s: %v", d.name, err)
	}
	if t.Failed() || strings.Contains(d.stderr.String(), "panic:") {
		t.Logf("--- studio %s ---\n%s\n%s", d.name, tail(d.stdout.String(), 2000), tail(d.stderr.String(), 4000))
	}
}

// signal sends SIGTERM once: the process drains and exits.
func (d *daemon) signal() {
	d.term.Do(func() { _ = d.cmd.Process.Signal(syscall.SIGTERM) })
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(timeout time.Duration) error {
	select {
	case <-d.done:
	default:
		d.signal()
		select {
		case <-d.done:
		case <-time.After(timeout):
			_ = d.cmd.Process.Kill()
			<-d.done
			return fmt.Errorf("did not exit within %s of SIGTERM", timeout)
		}
	}
	if d.err != nil {
		return fmt.Errorf("exited with %v, want status 0", d.err)
	}
	if strings.Contains(d.stderr.String(), "panic:") {
		return errors.New("panicked")
	}
	return nil
}

// waitFor polls cond every 50ms until it holds; it fails the test after timeout or
// when the daemon d (if any) exits first.
func waitFor(t *testing.T, d *daemon, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if d != nil {
			select {
			case <-d.done:
				t.Fatalf("waiting for %s: the process exited (%v)\n%s", what, d.err, tail(d.stderr.String(), 3000))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// httpOK reports whether GET url answers 200.
func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// needCached skips the test unless every asset is in the cache; with
// STUDIO_REQUIRE_ASSETS=1 (make test) a missing one fails it instead.
func needCached(t *testing.T, why string, as ...assets.Asset) {
	t.Helper()
	for _, a := range as {
		p := filepath.Join(assets.DefaultDir(), filepath.FromSlash(a.Path))
		if _, err := os.Stat(p); err != nil {
			msg := fmt.Sprintf("%s needs %s in the asset cache (run `studio fetch runtime web`): %v", why, a.Name, err)
			if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// identityModel imports the bench's 1x1 identity convolution with
// `studio models import-ncnn` and returns the folder to serve with --model-dir: a real
// model that needs no download and runs in microseconds.
func identityModel(t *testing.T) string {
	t.Helper()
	src, dir := t.TempDir(), t.TempDir()
	if err := bench.WriteIdentityModel(src); err != nil {
		t.Fatal(err)
	}
	r := studio(t, testEnv(), "models", "import-ncnn", "--param", filepath.Join(src, "identity.param"), "--bin", filepath.Join(src, "identity.bin"),
		"--name", testModel, "--version", testVersion, "--task", string(schemas.TaskStyleTransfer), "--scale", "1", "--license", "MIT", "--out", dir)
	expect(t, r, 0, "wrote ", "serve it with: studio up --model-dir "+dir)
	for _, f := range []string{testModel + "-" + testVersion + ".onnx", testModel + "-" + testVersion + ".yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("import-ncnn: %v", err)
		}
	}
	return dir
}

const (
	testModel   = "cli-identity"
	testVersion = "v1"
	testModelID = testModel + "@" + testVersion
)

// testPNG writes a small photo-like PNG (w x h) and returns its path.
func testPNG(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cluster is studio run as separate processes, as in production: an embedded NATS
// server (in the test), `studio ingest` and one `studio worker` per light stage. The
// inference worker starts on demand (it needs the cached ONNX Runtime library), so
// jobs submitted before it wait at inference and can be cancelled.
type cluster struct {
	owner                           *testing.T // the test whose end stops the processes
	daemons                         []*daemon  // its processes, stopped together
	natsURL, api, dataDir, modelDir string
	// env points every command at the cluster (--nats-url, --data-dir for the shared JWT
	// keys, --model-dir, --models, --server).
	env []string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown) // registered first, so it runs after the processes have stopped
	c := &cluster{owner: t, natsURL: e.ClientURL(), dataDir: t.TempDir(), modelDir: identityModel(t)}
	c.api = fmt.Sprintf("http://127.0.0.1:%d", port(t))
	c.env = testEnv("STUDIO_NATS_URL="+c.natsURL, "STUDIO_DATA_DIR="+c.dataDir, "STUDIO_MODEL_DIR="+c.modelDir,
		"STUDIO_MODELS="+testModelID, "STUDIO_SERVER="+c.api)

	ingestProc := c.start(t, "ingest", "--http", strings.TrimPrefix(c.api, "http://"), "--worker-id", "cli-ingest")
	waitFor(t, ingestProc, time.Minute, "studio ingest serving", func() bool { return httpOK(c.api + "/health/live") })
	for _, st := range []schemas.Stage{schemas.StagePreprocess, schemas.StagePostprocess, schemas.StageStore} {
		c.worker(t, st)
	}
	return c
}

// start starts a cluster process that runs until the end of the owning test, where
// every process of the cluster gets SIGTERM at once and each must exit cleanly.
func (c *cluster) start(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := spawn(t, c.env, args...)
	c.daemons = append(c.daemons, d)
	c.owner.Cleanup(func() {
		for _, p := range c.daemons {
			p.signal()
		}
		d.finish(c.owner)
	})
	return d
}

// worker starts `studio worker --stage st` and waits until it is ready.
func (c *cluster) worker(t *testing.T, st schemas.Stage, flags ...string) *daemon {
	t.Helper()
	admin := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	args := append([]string{"worker", "--stage", string(st), "--http", strings.TrimPrefix(admin, "http://"), "--worker-id", "cli-" + string(st)}, flags...)
	d := c.start(t, args...)
	waitFor(t, d, time.Minute, "studio worker --stage "+string(st)+" ready", func() bool { return httpOK(admin + "/health/ready") })
	return d
}

// as returns the cluster's environment with the caller's credentials.
func (c *cluster) as(token string) []string {
	return append(slices.Clone(c.env), "STUDIO_TOKEN="+token)
}

// jobOf returns the job as `studio jobs get --json` prints it.
func (c *cluster) jobOf(t *testing.T, token, id string) ingest.JobV2 {
	t.Helper()
	r := studio(t, c.as(token), "jobs", "get", id, "--json")
	expect(t, r, 0, id)
	var j ingest.JobV2
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("jobs get --json: %v\n%s", err, r)
	}
	return j
}

var queuedLine = regexp.MustCompile(`job (\S+) queued`)

// TestCLI drives every command against one cluster, in the order a user would: users,
// models, submit, jobs, the inference worker, the ClickHouse commands, then deletion
// and erasure. The subtests share state and run in order.
func TestCLI(t *testing.T) {
	c := startCluster(t)
	var aliceToken, bobToken, eveToken, queuedJob, doneJob string

	t.Run("users create adds a user", func(t *testing.T) {
		r := studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "alice", "--tier", "premium")
		expect(t, r, 0, "created acme/alice (premium)")
	})
	t.Run("users create refuses a taken id", func(t *testing.T) {
		r := studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "alice")
		expect(t, r, 1)
		if !strings.Contains(r.stderr, auth.ErrUserExists.Error()) {
			t.Fatalf("stderr does not say the user exists\n%s", r)
		}
	})
	t.Run("users create --admin grants the admin scope", func(t *testing.T) {
		expect(t, studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "bob"), 0, "created acme/bob (normal)")
		expect(t, studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "root", "--admin"), 0, "created acme/root (normal)")
	})
	t.Run("users set-tier changes the tier that users list shows", func(t *testing.T) {
		expect(t, studio(t, c.env, "users", "set-tier", "--tenant", "acme", "--user", "bob", "--tier", "free"), 0, "acme/bob is now free")
		r := studio(t, c.env, "users", "list", "--tenant", "acme")
		expect(t, r, 0, "USER", "alice")
		if !regexp.MustCompile(`(?m)^bob\s+free\s+jobs:write,jobs:read,keys:manage\s`).MatchString(r.stdout) {
			t.Fatalf("users list does not show bob as a free user\n%s", r)
		}
		if !regexp.MustCompile(`(?m)^root\s+normal\s+\S*,admin\s`).MatchString(r.stdout) {
			t.Fatalf("users list does not show root as an admin\n%s", r)
		}
		if !regexp.MustCompile(`(?m)^alice\s+premium\s`).MatchString(r.stdout) {
			t.Fatalf("users list does not show alice as premium\n%s", r)
		}
	})
	t.Run("users token prints a token pair that the HTTP API accepts", func(t *testing.T) {
		for _, u := range []struct {
			user string
			tok  *string
		}{{"acme/alice", &aliceToken}, {"acme/bob", &bobToken}, {"other/eve", &eveToken}} {
			tenant, user, _ := strings.Cut(u.user, "/")
			if tenant == "other" {
				expect(t, studio(t, c.env, "users", "create", "--tenant", tenant, "--user", user), 0, "created "+u.user)
			}
			r := studio(t, c.env, "users", "token", "--tenant", tenant, "--user", user)
			expect(t, r, 0, "access_token")
			var pair auth.TokenPair
			if err := json.Unmarshal([]byte(r.stdout), &pair); err != nil || pair.AccessToken == "" || pair.RefreshToken == "" {
				t.Fatalf("token pair: %v\n%s", err, r)
			}
			*u.tok = pair.AccessToken
		}
		expect(t, studio(t, c.as(aliceToken), "jobs", "list"), 0, "ID  ")
		r := studio(t, c.env, "jobs", "list") // no token
		if r.code != 1 || !strings.Contains(r.stderr, "401") {
			t.Fatalf("jobs list without a token: want exit 1 and 401\n%s", r)
		}
	})

	t.Run("models list --server shows what the cluster serves", func(t *testing.T) {
		r := studio(t, c.as(aliceToken), "models", "list", "--server", c.api)
		expect(t, r, 0, "MODEL", testModelID)
		if !regexp.MustCompile(`(?m)^` + testModelID + `\s+style-transfer\s`).MatchString(r.stdout) {
			t.Fatalf("the identity model is not listed for style-transfer\n%s", r)
		}
		r = studio(t, c.env, "models", "list", "--server", c.api) // no token
		if r.code != 1 || !strings.Contains(r.stderr, "401") {
			t.Fatalf("models list --server without a token: want exit 1 and 401\n%s", r)
		}
	})
	t.Run("models list without a server reads the manifests", func(t *testing.T) {
		r := studio(t, c.env, "models", "list")
		expect(t, r, 0, "MANIFEST", testModelID, "isnet@small")
		if !regexp.MustCompile(`(?m)^` + testModelID + `\s+style-transfer\s+\w+\s+\d+\s+-\s+true\s`).MatchString(r.stdout) {
			t.Fatalf("the imported model is not listed as served\n%s", r)
		}
	})

	photo := testPNG(t, 24, 16)
	t.Run("submit queues a job and gives up at --timeout while no inference worker runs", func(t *testing.T) {
		r := studio(t, c.as(aliceToken), "submit", "--task", "style-transfer", "--timeout", "3s", "-o", t.TempDir(), photo)
		if r.code != 1 || !strings.Contains(r.stderr, "not finished") {
			t.Fatalf("want exit 1 with the job not finished\n%s", r)
		}
		m := queuedLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("submit printed no job id\n%s", r)
		}
		queuedJob = m[1]
	})
	t.Run("worker: the preprocess worker ran the job, which waits for inference", func(t *testing.T) {
		var j ingest.JobV2
		waitFor(t, nil, 30*time.Second, "preprocess to finish", func() bool {
			j = c.jobOf(t, aliceToken, queuedJob)
			i := slices.IndexFunc(j.Timings, func(s ingest.StageTimingV2) bool { return s.Stage == schemas.StagePreprocess })
			return i >= 0 && !j.Timings[i].FinishedAt.IsZero()
		})
		i := slices.IndexFunc(j.Timings, func(s ingest.StageTimingV2) bool { return s.Stage == schemas.StagePreprocess })
		if j.Timings[i].Worker != "cli-preprocess" {
			t.Fatalf("preprocess timing %+v, want it run by cli-preprocess", j.Timings[i])
		}
		if j.Status.Final() || j.Model.Name != testModel {
			t.Fatalf("job %s with model %+v, want it waiting on %s", j.Status, j.Model, testModelID)
		}
	})
	t.Run("jobs list shows the caller's jobs only", func(t *testing.T) {
		r := studio(t, c.as(aliceToken), "jobs", "list", "--limit", "5")
		expect(t, r, 0, queuedJob, "style-transfer", testModelID)
		r = studio(t, c.as(bobToken), "jobs", "list")
		expect(t, r, 0, "ID  ")
		if strings.Contains(r.stdout, queuedJob) {
			t.Fatalf("bob sees alice's job\n%s", r)
		}
	})
	t.Run("jobs get prints the job for people", func(t *testing.T) {
		r := studio(t, c.as(aliceToken), "jobs", "get", queuedJob)
		expect(t, r, 0, "job "+queuedJob, "model "+testModelID, "tier premium", "preprocess")
	})
	t.Run("jobs get of another tenant's job fails with 404", func(t *testing.T) {
		r := studio(t, c.as(eveToken), "jobs", "get", queuedJob)
		if r.code != 1 || !strings.Contains(r.stderr, "404") {
			t.Fatalf("want exit 1 and 404\n%s", r)
		}
	})
	t.Run("jobs watch follows the job until jobs cancel ends it", func(t *testing.T) {
		w := &daemon{cmd: exec.Command(studioBinary(t), "jobs", "watch", queuedJob), done: make(chan struct{})}
		w.cmd.Stdout, w.cmd.Stderr, w.cmd.Env = &w.stdout, &w.stderr, c.as(aliceToken)
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { w.err = w.cmd.Wait(); close(w.done) }()
		t.Cleanup(func() { _ = w.cmd.Process.Kill(); <-w.done })
		// The WebSocket's first frame is the current state: watch is following.
		waitFor(t, w, 30*time.Second, "jobs watch to print the state", func() bool { return strings.Contains(w.stdout.String(), "running") })

		expect(t, studio(t, c.as(aliceToken), "jobs", "cancel", queuedJob), 0, queuedJob+" cancelled")
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			t.Fatal("jobs watch did not end after the job was cancelled")
		}
		var exit *exec.ExitError
		if !errors.As(w.err, &exit) || exit.ExitCode() != 1 || !strings.Contains(w.stdout.String(), queuedJob+" cancelled") || !strings.Contains(w.stderr.String(), "cancelled") {
			t.Fatalf("jobs watch ended with %v, want exit 1 saying the job was cancelled\n%s\n%s", w.err, w.stdout.String(), w.stderr.String())
		}
		if j := c.jobOf(t, aliceToken, queuedJob); j.Status != schemas.StatusCancelled {
			t.Fatalf("job %s after cancel, want cancelled", j.Status)
		}
	})
	t.Run("jobs cancel of a cancelled job is a no-op", func(t *testing.T) {
		expect(t, studio(t, c.as(aliceToken), "jobs", "cancel", queuedJob), 0, queuedJob+" cancelled")
	})

	t.Run("worker --stage inference runs jobs to the end", func(t *testing.T) {
		needCached(t, "the inference worker", assets.ONNXRuntimeCPU)
		c.worker(t, schemas.StageInference, "--threads", "1", "--concurrency", "1")
	})
	t.Run("submit runs a job and saves its result", func(t *testing.T) {
		needCached(t, "a job that runs to the end", assets.ONNXRuntimeCPU)
		out := t.TempDir()
		r := studio(t, c.as(aliceToken), "submit", "--task", "style-transfer", "--timeout", "90s", "-o", out, photo)
		expect(t, r, 0, "wrote "+out, "done in")
		doneJob = queuedLine.FindStringSubmatch(r.stdout)[1]
		requireImage(t, out, 24, 16)
	})
	t.Run("submit --wait gets the finished job from POST /v2/predict", func(t *testing.T) {
		needCached(t, "a job that runs to the end", assets.ONNXRuntimeCPU)
		out := t.TempDir()
		r := studio(t, c.as(aliceToken), "submit", "--wait", "--task", "style-transfer", "--timeout", "90s", "-o", out, testPNG(t, 20, 12))
		expect(t, r, 0, "succeeded (the server waited)", "wrote "+out, "done in")
		if strings.Contains(r.stdout, "queued") {
			t.Fatalf("submit --wait followed the job instead of getting it from predict\n%s", r)
		}
		requireImage(t, out, 20, 12)
	})
	t.Run("submit of a folder runs it as one batch and saves every result", func(t *testing.T) {
		needCached(t, "a job that runs to the end", assets.ONNXRuntimeCPU)
		dir, out := t.TempDir(), t.TempDir()
		for i, size := range [][2]int{{18, 10}, {14, 8}} {
			data, err := os.ReadFile(testPNG(t, size[0], size[1]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.png", i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := studio(t, c.as(aliceToken), "submit", "--task", "style-transfer", "--timeout", "90s", "-o", out, dir)
		expect(t, r, 0, "batch ", "of 2 jobs queued", "100%  2 succeeded", "done in")
		requireImage(t, out, 18, 10)
		requireImage(t, out, 14, 8)
		for _, name := range []string{"p0.", "p1."} {
			if !strings.Contains(r.stdout, filepath.Join(out, name)) {
				t.Fatalf("no result saved for %s\n%s", name, r)
			}
		}
	})
	t.Run("jobs watch of a finished job saves its results with -o", func(t *testing.T) {
		if doneJob == "" {
			t.Skip("no finished job (the inference worker did not run)")
		}
		out := t.TempDir()
		expect(t, studio(t, c.as(aliceToken), "jobs", "watch", doneJob, "-o", out), 0, doneJob+" succeeded", "wrote "+out)
		requireImage(t, out, 24, 16)
		j := c.jobOf(t, aliceToken, doneJob)
		i := slices.IndexFunc(j.Timings, func(s ingest.StageTimingV2) bool { return s.Stage == schemas.StageInference })
		if i < 0 || j.Timings[i].Worker != "cli-inference" {
			t.Fatalf("inference timing %+v, want it run by cli-inference", j.Timings)
		}
	})
	t.Run("jobs cancel of a finished job fails with 409", func(t *testing.T) {
		if doneJob == "" {
			t.Skip("no finished job (the inference worker did not run)")
		}
		r := studio(t, c.as(aliceToken), "jobs", "cancel", doneJob)
		if r.code != 1 || !strings.Contains(r.stderr, "409") {
			t.Fatalf("want exit 1 and 409\n%s", r)
		}
	})

	t.Run("migrate and sink write the cluster's events to ClickHouse", func(t *testing.T) {
		c.testClickHouse(t, queuedJob, aliceToken)
	})

	t.Run("users delete revokes the user's sessions", func(t *testing.T) {
		expect(t, studio(t, c.env, "users", "delete", "--tenant", "acme", "--user", "bob"), 0, "deleted acme/bob and revoked 1 sessions and")
		r := studio(t, c.as(bobToken), "jobs", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "401") {
			t.Fatalf("jobs list with the deleted user's token: want exit 1 and 401\n%s", r)
		}
		if r := studio(t, c.env, "users", "list", "--tenant", "acme"); strings.Contains(r.stdout, "bob") {
			t.Fatalf("users list still shows bob\n%s", r)
		}
	})
	t.Run("users delete of a missing user fails", func(t *testing.T) {
		r := studio(t, c.env, "users", "delete", "--tenant", "acme", "--user", "bob")
		if r.code != 1 || !strings.Contains(r.stderr, auth.ErrUserNotFound.Error()) {
			t.Fatalf("want exit 1 saying the user is not found\n%s", r)
		}
	})
	t.Run("users erase removes the user and their jobs", func(t *testing.T) {
		r := studio(t, c.env, "users", "erase", "--tenant", "acme", "--user", "alice")
		expect(t, r, 0, `"user": "alice"`)
		var rep erasure.ErasureReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("erasure report: %v\n%s", err, r)
		}
		for _, id := range []string{queuedJob, doneJob} {
			if id != "" && !slices.Contains(rep.Jobs, id) {
				t.Errorf("the erasure report lacks job %s: %v", id, rep.Jobs)
			}
		}
		if len(rep.Objects) == 0 {
			t.Errorf("the erasure deleted no objects; the job's input was stored")
		}
		if r := studio(t, c.env, "users", "list", "--tenant", "acme"); strings.Contains(r.stdout, "alice") {
			t.Fatalf("users list still shows alice\n%s", r)
		}
		if r := studio(t, c.as(aliceToken), "jobs", "get", queuedJob); r.code != 1 {
			t.Fatalf("the erased user's job is still readable\n%s", r)
		}
	})

	t.Run("bad input exits non-zero with a clear message", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"an unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
			{"no command", nil, 2, "Usage:"},
			{"an unknown users verb", []string{"users", "frob", "--tenant", "acme"}, 1, `unknown users command "frob"`},
			{"users without a verb", []string{"users"}, 1, "usage: studio users COMMAND"},
			{"users create without --tenant", []string{"users", "create", "--user", "carol"}, 1, "--tenant"},
			{"users create without --user", []string{"users", "create", "--tenant", "acme"}, 1, "--user"},
			{"users set-tier with a bad tier", []string{"users", "set-tier", "--tenant", "acme", "--user", "alice", "--tier", "gold"}, 1, `--tier "gold": use premium, normal or free`},
			{"users with an unknown flag", []string{"users", "list", "--tenant", "acme", "--colour"}, 1, "flag provided but not defined: -colour"},
			{"an unknown jobs verb", []string{"jobs", "frob"}, 1, `unknown jobs command "frob"`},
			{"jobs get without an id", []string{"jobs", "get"}, 1, "name a job"},
			{"jobs watch of two jobs", []string{"jobs", "watch", "a", "b"}, 1, "watch follows one job"},
			{"jobs list with a bad --limit", []string{"jobs", "list", "--limit", "0"}, 1, "--limit 0: use 1 to 100"},
			{"jobs list against no server", []string{"jobs", "list", "--server", "http://127.0.0.1:9"}, 1, "is studio running at http://127.0.0.1:9"},
			{"an unknown models verb", []string{"models", "frob"}, 1, `unknown models command "frob"`},
			{"models import-ncnn without files", []string{"models", "import-ncnn"}, 1, "--param, --bin, --name and --version are required"},
			{"submit without an image", []string{"submit"}, 1, "name at least one image file"},
			{"submit of a missing file", []string{"submit", "--token", "x", "/nonexistent.png"}, 1, "/nonexistent.png"},
			{"worker without --stage", []string{"worker"}, 1, "--stage is required"},
			{"worker with an unknown stage", []string{"worker", "--stage", "paint", "--http", "127.0.0.1:0"}, 1, "paint"},
			{"ingest without --nats-url", []string{"ingest", "--nats-url", ""}, 1, "--nats-url is required"},
			{"up with a bad device", []string{"up", "--device", "tpu"}, 1, `--device "tpu": use auto, cpu or cuda`},
			{"up with a model that is no name@version", []string{"up", "--models", "nope"}, 1, `--models: "nope" is not name@version`},
			{"sink without ClickHouse", []string{"sink"}, 1, "--clickhouse-addr is required"},
			{"migrate without ClickHouse", []string{"migrate"}, 1, "--clickhouse-addr is required"},
			{"sql without a query", []string{"sql"}, 1, "name a query"},
			{"sql with a bad --format", []string{"sql", "--format", "xml", "SELECT 1"}, 1, `--format "xml": use table, csv or json`},
			{"sql with a query and --cookbook", []string{"sql", "--cookbook", "p95_by_stage", "SELECT 1"}, 1, "not both"},
			{"sql without credentials", []string{"sql", "SELECT 1"}, 1, "401"},
			{"fetch of an unknown group", []string{"fetch", "--cache-dir", t.TempDir(), "runtime", "nope"}, 1, `unknown group "nope"`},
			{"bench with an unknown task", []string{"bench", "--task", "paint"}, 1, "paint"},
			{"bench --task identity against a server", []string{"bench", "--task", "identity", "--server", "http://127.0.0.1:9"}, 1, "cannot target --server"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := studio(t, c.env, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
					t.Fatalf("want exit %d and %q on stderr\n%s", tc.code, tc.want, r)
				}
			})
		}
	})
}

// requireImage checks that every file in dir is a PNG and one of them is w x h (the
// result; the others are previews).
func requireImage(t *testing.T, dir string, w, h int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no results in %s", dir)
	}
	var sizes []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if cfg.Width == w && cfg.Height == h {
			return
		}
		sizes = append(sizes, fmt.Sprintf("%s %dx%d", filepath.Base(p), cfg.Width, cfg.Height))
	}
	t.Fatalf("no %dx%d result in %s: %v", w, h, dir, sizes)
}

// TestHelpOfEveryCommand runs `studio CMD [VERB] -h` and `studio help CMD [VERB]` for
// every command: each exits 0 and prints its flags.
func TestHelpOfEveryCommand(t *testing.T) {
	env := testEnv()
	expect(t, studio(t, env, "help"), 0, "Usage:", "studio jobs")
	for _, c := range commands {
		verbs := c.verbs
		if len(verbs) == 0 {
			verbs = []string{""}
		}
		for _, verb := range verbs {
			args := []string{c.name}
			if verb != "" {
				args = append(args, verb)
			}
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				for _, cmd := range [][]string{append(slices.Clone(args), "-h"), append([]string{"help"}, args...)} {
					r := studio(t, env, cmd...)
					if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "-") {
						t.Fatalf("studio %s: want exit 0 and the flags\n%s", strings.Join(cmd, " "), r)
					}
				}
			})
		}
		if len(c.verbs) > 0 {
			t.Run(c.name+" -h lists the verbs", func(t *testing.T) {
				r := studio(t, env, c.name, "-h")
				expect(t, r, 0, c.verbs...)
			})
		}
	}
}

// TestUp runs `studio up` with its embedded NATS server and checks that the token it
// prints works, that `studio users` finds the server from --nats-listen alone, and
// that it stops cleanly on SIGTERM.
func TestUp(t *testing.T) {
	needCached(t, "studio up", assets.Web...)
	modelDir := identityModel(t)
	natsListen := fmt.Sprintf("127.0.0.1:%d", port(t))
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	stages := "ingest,preprocess,postprocess,store"
	ort := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ONNXRuntimeCPU.Path))
	if _, err := os.Stat(ort); err == nil {
		stages += ",inference"
	}
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", natsListen, "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--model-dir", modelDir, "--models", testModelID, "--stages", stages, "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	token := tokenLine.FindStringSubmatch(up.stdout.String())[1]
	if !strings.Contains(up.stdout.String(), "Open:   "+api+"/#token=") {
		t.Fatalf("studio up printed no link to open\n%s", up.stdout.String())
	}

	t.Run("the printed token calls the API", func(t *testing.T) {
		expect(t, studio(t, append(slices.Clone(env), "STUDIO_TOKEN="+token), "jobs", "list", "--server", api), 0, "ID  ")
	})
	t.Run("models list --server shows the served model", func(t *testing.T) {
		expect(t, studio(t, append(slices.Clone(env), "STUDIO_TOKEN="+token), "models", "list", "--server", api), 0, testModelID)
	})
	t.Run("users reaches the embedded server through --nats-listen", func(t *testing.T) {
		expect(t, studio(t, env, "users", "create", "--nats-listen", natsListen, "--tenant", "acme", "--user", "carol"), 0, "created acme/carol")
		expect(t, studio(t, env, "users", "list", "--nats-listen", natsListen, "--tenant", "acme"), 0, "carol")
	})
	t.Run("SIGTERM stops it cleanly", func(t *testing.T) {
		if err := up.stop(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFetchFromAWarmCache fetches the web assets, already cached: fetch verifies and
// lists them without downloading (downloads are refused here).
func TestFetchFromAWarmCache(t *testing.T) {
	needCached(t, "fetch from a warm cache", assets.Web...)
	r := studio(t, testEnv(), "fetch", "web")
	want := []string{}
	for _, a := range assets.Web {
		want = append(want, a.Name, filepath.Join(assets.DefaultDir(), filepath.FromSlash(a.Path)))
	}
	expect(t, r, 0, want...)
}

// TestFetchGPURuntimeFromAWarmCache runs `studio fetch runtime --gpu` (the flag after
// the group) on a cache that holds the CUDA build: the three libraries are verified and
// listed in their own directory, beside and not over the CPU build, without a download.
func TestFetchGPURuntimeFromAWarmCache(t *testing.T) {
	needCached(t, "fetch runtime --gpu from a warm cache", assets.RuntimeGPU...)
	r := studio(t, testEnv(), "fetch", "runtime", "--gpu")
	var want []string
	for _, a := range assets.RuntimeGPU {
		want = append(want, a.Name, a.SHA256[:12], filepath.Join(assets.DefaultDir(), "lib", "onnxruntime-cuda-1.29.0", path.Base(a.Path)))
	}
	expect(t, r, 0, want...)
	if strings.Contains(r.stdout, assets.ONNXRuntimeCPU.Path) {
		t.Errorf("--gpu listed the CPU runtime:\n%s", r)
	}
	r = studio(t, testEnv(), "fetch", "--gpu", "web")
	if r.code != 1 || !strings.Contains(r.stderr, "--gpu selects the CUDA build of the runtime group") {
		t.Errorf("--gpu without the runtime group: want exit 1 and a hint\n%s", r)
	}
}

// TestBench runs the shortest useful `studio bench`: five identity jobs through the
// whole pipeline in-process.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("studio bench skipped with -short")
	}
	needCached(t, "studio bench", append([]assets.Asset{assets.ONNXRuntimeCPU}, assets.Web...)...)
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	r := studio(t, testEnv(), "bench", "--task", "identity", "--jobs", "5", "--warmup", "1", "--concurrency", "2", "--raw=false", "--threads", "1", "--json", jsonFile,
		"--params", `{"format":"webp","quality":80}`)
	expect(t, r, 0, "PIPELINE", "5 jobs (+1 warm-up)", "RESULT FILES")
	// --params reached the jobs: their image results are WebP.
	if !regexp.MustCompile(`(?m)^\s+image\s+.*image/webp$`).MatchString(r.stdout) {
		t.Errorf("no RESULT FILES row for a WebP image\n%s", r)
	}
	if !regexp.MustCompile(`succeeded / failed\s+5 / 0`).MatchString(r.stdout) {
		t.Fatalf("not every bench job succeeded\n%s", r)
	}
	// Core-ms per job per stage, each stage having handled the five jobs.
	for _, stage := range []string{"preprocess", "inference", "postprocess", "store"} {
		if !regexp.MustCompile(`(?m)^\s+` + stage + `\s+[0-9.]+\s+[0-9]+%\s+5$`).MatchString(r.stdout) {
			t.Errorf("no CPU PER JOB row for %s with 5 job messages\n%s", stage, r)
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil || !json.Valid(b) {
		t.Fatalf("--json: %v", err)
	}
	var rep struct {
		Pipeline struct {
			StageCPU []struct {
				Stage        string  `json:"stage"`
				CoreMSPerJob float64 `json:"core_ms_per_job"`
			} `json:"stage_cpu"`
		} `json:"pipeline"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Pipeline.StageCPU) != 5 || rep.Pipeline.StageCPU[0].CoreMSPerJob <= 0 {
		t.Errorf("--json stage_cpu = %+v (%v), want four stages and the rest, preprocess above 0", rep.Pipeline.StageCPU, err)
	}
}

// TestWebhooksSecretAndRotate runs `studio webhooks`: the secret it prints for a tenant
// is the one deliveries to that tenant are signed with, it differs per tenant, and a
// rotation's "next" secrets are what `secret` prints once the new key is set.
func TestWebhooksSecretAndRotate(t *testing.T) {
	const root, old = "root-secret-for-the-test", "old-root-secret"
	env := testEnv("STUDIO_WEBHOOK_SECRET=" + root)
	secrets := map[string]string{}
	r := studio(t, env, "webhooks", "secret", "--tenant", "acme", "--tenant", "globex")
	expect(t, r, 0, "acme\tcurrent\t", "globex\tcurrent\t")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("line %q: want tenant, kind, secret", line)
		}
		secrets[f[0]] = f[2]
	}
	body := []byte(`{"job_id":"j1","tenant":"acme"}`)
	now := time.Now()
	sig := ingest.SignWebhook(now, body, ingest.TenantWebhookSecret(root, "acme")) // what ingest sends
	if !ingest.VerifyWebhook(sig, body, secrets["acme"], now, time.Minute) {
		t.Error("acme's printed secret does not verify a delivery to acme")
	}
	if ingest.VerifyWebhook(sig, body, secrets["globex"], now, time.Minute) || secrets["acme"] == secrets["globex"] {
		t.Error("globex's printed secret verifies a delivery to acme")
	}

	r = studio(t, append(slices.Clone(env), "STUDIO_WEBHOOK_PREVIOUS_SECRET="+old), "webhooks", "secret", "--tenant", "acme")
	expect(t, r, 0, "acme\tcurrent\t"+secrets["acme"], "acme\tprevious\t"+ingest.TenantWebhookSecret(old, "acme"))

	r = studio(t, env, "webhooks", "rotate", "--tenant", "acme")
	expect(t, r, 0, "new webhook secret: ", "STUDIO_WEBHOOK_PREVIOUS_SECRET", "acme\tnext\t")
	next := strings.Fields(strings.SplitN(r.stdout, "new webhook secret: ", 2)[1])[0]
	var nextAcme string
	for _, line := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "acme\tnext\t"); ok {
			nextAcme = v
		}
	}
	if nextAcme == secrets["acme"] {
		t.Error("rotate printed the current secret as the next one")
	}
	r = studio(t, testEnv("STUDIO_WEBHOOK_SECRET="+next), "webhooks", "secret", "--tenant", "acme")
	expect(t, r, 0, "acme\tcurrent\t"+nextAcme)

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"without a tenant it says which flag is missing", env, []string{"webhooks", "secret"}, "--tenant"},
		{"without a webhook secret it says webhooks are off", testEnv(), []string{"webhooks", "secret", "--tenant", "acme"}, "STUDIO_WEBHOOK_SECRET"},
		{"a tenant id that is no subject token is refused", env, []string{"webhooks", "secret", "--tenant", "a.b"}, "tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := studio(t, tc.env, tc.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want a failure naming %q\n%s", tc.want, r)
			}
		})
	}
}
