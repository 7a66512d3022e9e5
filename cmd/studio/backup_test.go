package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestBackupAndRestore runs jobs on a cluster of separate processes, backs the
// JetStream state up with `studio backup` while more jobs are submitted, restores it
// with `studio restore` into a fresh NATS server, starts `studio ingest` on that, and
// checks that every job finished before the backup reads as it did (status and the
// result bytes), and that every job the backup shows succeeded has its results.
func TestBackupAndRestore(t *testing.T) {
	needCached(t, "jobs that run to the end", assets.ONNXRuntimeCPU)
	c := startCluster(t)
	c.worker(t, schemas.StageInference, "--threads", "1", "--concurrency", "1")
	expect(t, studio(t, c.env, "users", "create", "--tenant", "acme", "--user", "alice"), 0, "created acme/alice")
	token := tokenOf(t, c, "acme", "alice")

	// Jobs finished before the backup, with the results the client saved.
	finished := map[string]string{} // job id -> results directory
	for i := range 3 {
		out := t.TempDir()
		r := studio(t, c.as(token), "submit", "--task", "style-transfer", "--timeout", "90s", "-o", out, testPNG(t, 16+2*i, 12))
		expect(t, r, 0, "wrote "+out)
		finished[queuedLine.FindStringSubmatch(r.stdout)[1]] = out
	}

	// More jobs while the backup runs.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		extra []string
	)
	var photos []string
	for i := range 4 {
		photos = append(photos, testPNG(t, 10+2*i, 10))
	}
	discard := t.TempDir()
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command(studioBinary(t), "submit", "--task", "style-transfer", "--timeout", "60s", "-o", discard, photos[i%len(photos)])
			cmd.Env = c.as(token)
			out, _ := cmd.Output()
			if m := queuedLine.FindSubmatch(out); m != nil {
				mu.Lock()
				extra = append(extra, string(m[1]))
				mu.Unlock()
			}
		}
	}()
	dir := filepath.Join(t.TempDir(), "backup")
	time.Sleep(500 * time.Millisecond) // let the first extra job be in flight
	r := studio(t, c.env, "backup", "--to", dir)
	close(stop)
	wg.Wait()
	expect(t, r, 0, "KV_jobs", "OBJ_", "backed up ")
	t.Logf("backup, with %d jobs submitted around it:\n%s", len(extra), r.stdout)
	if order := r.stdout; strings.Index(order, "KV_jobs") > strings.Index(order, "OBJ_") {
		t.Fatalf("the object store was taken before the job records\n%s", r)
	}
	t.Run("backup refuses a directory that holds a backup", func(t *testing.T) {
		r := studio(t, c.env, "backup", "--to", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "already holds a backup") {
			t.Fatalf("want exit 1 and 'already holds a backup'\n%s", r)
		}
	})

	// A fresh server, restored before any studio process starts.
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	restoreEnv := testEnv("STUDIO_NATS_URL=" + e.ClientURL())
	start := time.Now()
	r = studio(t, restoreEnv, "restore", "--from", dir)
	expect(t, r, 0, "restored KV_jobs", "restored ")
	t.Logf("restore took %s:\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
	t.Run("restore refuses a server that has the streams", func(t *testing.T) {
		r := studio(t, restoreEnv, "restore", "--from", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
			t.Fatalf("want exit 1 and 'already exists'\n%s", r)
		}
	})

	// The restored cluster: ingest only (with the same signing keys), read-only use.
	c2 := &cluster{owner: t, natsURL: e.ClientURL(), dataDir: c.dataDir, modelDir: c.modelDir}
	c2.api = fmt.Sprintf("http://127.0.0.1:%d", port(t))
	c2.env = testEnv("STUDIO_NATS_URL="+c2.natsURL, "STUDIO_DATA_DIR="+c2.dataDir, "STUDIO_MODEL_DIR="+c2.modelDir,
		"STUDIO_MODELS="+testModelID, "STUDIO_SERVER="+c2.api)
	ing := c2.start(t, "ingest", "--http", strings.TrimPrefix(c2.api, "http://"), "--worker-id", "restored-ingest")
	waitFor(t, ing, time.Minute, "studio ingest on the restored server", func() bool { return httpOK(c2.api + "/health/live") })

	t.Run("every job finished before the backup reads as it did, results byte for byte", func(t *testing.T) {
		for id, before := range finished {
			j := c2.jobOf(t, token, id)
			if j.Status != schemas.StatusSucceeded {
				t.Fatalf("restored job %s is %s, want succeeded", id, j.Status)
			}
			after := t.TempDir()
			expect(t, studio(t, c2.as(token), "jobs", "watch", id, "-o", after), 0, id+" succeeded", "wrote "+after)
			requireSameFiles(t, before, after)
		}
	})
	t.Run("every job the backup shows succeeded has its results", func(t *testing.T) {
		for _, id := range extra {
			r := studio(t, c2.as(token), "jobs", "get", id, "--json")
			if r.code != 0 {
				continue // submitted after the job records were taken
			}
			j := c2.jobOf(t, token, id)
			if j.Status != schemas.StatusSucceeded {
				continue
			}
			expect(t, studio(t, c2.as(token), "jobs", "watch", id, "-o", t.TempDir()), 0, id+" succeeded", "wrote ")
		}
	})
}

// tokenOf returns an access token of tenant/user.
func tokenOf(t *testing.T, c *cluster, tenant, user string) string {
	t.Helper()
	r := studio(t, c.env, "users", "token", "--tenant", tenant, "--user", user)
	expect(t, r, 0, "access_token")
	var pair auth.TokenPair
	if err := json.Unmarshal([]byte(r.stdout), &pair); err != nil || pair.AccessToken == "" {
		t.Fatalf("token pair: %v\n%s", err, r)
	}
	return pair.AccessToken
}

// requireSameFiles checks that two directories hold files of the same contents (the
// names differ: submit names them after the input, jobs watch after the job).
func requireSameFiles(t *testing.T, a, b string) {
	t.Helper()
	contents := func(dir string) []string {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		var out []string
		for _, p := range files {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(data))
		}
		slices.Sort(out)
		return out
	}
	want, got := contents(a), contents(b)
	if len(want) == 0 {
		t.Fatalf("no files in %s", a)
	}
	if !slices.Equal(want, got) {
		t.Fatalf("the restored results (%d files in %s) differ from the originals (%d files in %s)", len(got), b, len(want), a)
	}
}

// TestBackupAndRestoreRefuseBadInput: the commands say what is missing or wrong and
// exit 1 before touching anything.
func TestBackupAndRestoreRefuseBadInput(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"backup without --to", []string{"backup", "--nats-url", "nats://127.0.0.1:9"}, "--to DIR is required"},
		{"backup without a server", []string{"backup", "--nats-url", "", "--nats-listen", "", "--to", t.TempDir()}, "--nats-url is required"},
		{"restore without --from", []string{"restore", "--nats-url", "nats://127.0.0.1:9"}, "--from DIR is required"},
		{"restore of a directory that holds no backup", []string{"restore", "--nats-url", "nats://127.0.0.1:9", "--from", empty}, "is not a backup"},
		{"backup with an argument", []string{"backup", "--to", empty, "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := studio(t, testEnv(), tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit 1 and %q\n%s", tc.want, r)
			}
		})
	}
}

// TestBackupToS3 backs a server's streams up to a prefix of a MinIO bucket and restores
// them from there into a fresh server: a job record and an object come back.
func TestBackupToS3(t *testing.T) {
	bins, _ := filepath.Glob(filepath.Join(assets.DefaultDir(), "bin", "minio-*"))
	if len(bins) == 0 {
		t.Skip("MinIO is not cached (scripts/minio.sh builds it)")
	}
	ch := &chaos{t: t, dir: t.TempDir()}
	t.Cleanup(ch.stopAll)
	ch.startMinIO() // bucket "chaos", keys chaos / chaos-secret-key
	s3Flags := []string{"--s3-endpoint", ch.minioAddr, "--s3-access-key", "chaos", "--s3-secret-key", "chaos-secret-key"}

	ctx := context.Background()
	src := streamstest.Start(t)
	store, err := jobs.Open(ctx, src.JS)
	if err != nil {
		t.Fatal(err)
	}
	rec := &schemas.JobRecord{ID: "backed-up", Tenant: "acme", User: "alice", Tier: schemas.TierNormal, Task: schemas.TaskUpscale,
		Status: schemas.StatusSucceeded, SubmittedAt: time.Now().UTC()}
	if err := store.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	obs, err := natsobj.Open(ctx, src.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	image := bytes.Repeat([]byte("pixels"), 50000)
	if _, err := obs.Put(ctx, "results/acme/backed-up/image.png", bytes.NewReader(image), int64(len(image)), "image/png"); err != nil {
		t.Fatal(err)
	}

	const target = "s3://chaos/backups/2026-12-07"
	r := studio(t, testEnv(), append([]string{"backup", "--nats-url", src.Embedded.ClientURL(), "--to", target}, s3Flags...)...)
	expect(t, r, 0, "KV_jobs", "backed up ", target)
	r = studio(t, testEnv(), append([]string{"backup", "--nats-url", src.Embedded.ClientURL(), "--to", target}, s3Flags...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "already holds a backup") {
		t.Fatalf("a second backup to the same prefix: want exit 1 and 'already holds a backup'\n%s", r)
	}
	r = studio(t, testEnv(), "backup", "--nats-url", src.Embedded.ClientURL(), "--to", target)
	if r.code != 1 || !strings.Contains(r.stderr, "--s3-endpoint") {
		t.Fatalf("an S3 target without --s3-endpoint: want exit 1 naming the flag\n%s", r)
	}

	dst, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Shutdown)
	r = studio(t, testEnv(), append([]string{"restore", "--nats-url", dst.ClientURL(), "--from", target}, s3Flags...)...)
	expect(t, r, 0, "restored KV_jobs", "restored OBJ_studio")
	nc, err := dst.Connect("backup-s3-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	restored, err := jobs.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	got, err := restored.Get(ctx, "backed-up")
	if err != nil || got.Status != schemas.StatusSucceeded {
		t.Fatalf("restored record: %+v %v", got, err)
	}
	robs, err := natsobj.Open(ctx, js, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := robs.Get(ctx, "results/acme/backed-up/image.png")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(data, image) {
		t.Fatalf("restored object: %d bytes, want the %d written", len(data), len(image))
	}
}
