package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/schemas"
)

// These tests run the real binary as separate processes: ingest and the light stages in
// one `studio up`, and the inference stage as two `studio worker` processes sharing
// one consumer group.

func buildBinary(t *testing.T) string {
	t.Helper()
	return studioBinary(t)
}

func port(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), log: &bytes.Buffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "STUDIO_CACHE_DIR="+assets.DefaultDir())
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				_ = p.cmd.Process.Kill()
				t.Errorf("%v did not exit after SIGTERM", args[:2])
			}
		}
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", strings.Join(args[:2], " "), tail(p.log.String(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s", url, timeout)
}

// post submits the photo at path with pixel (0,0) nudged by variant, so every job has
// distinct bytes and none is answered from the result cache.
func post(t *testing.T, api, path string, variant int) string {
	t.Helper()
	data := variantOf(t, path, variant)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("task", "remove-background")
	fw, _ := mw.CreateFormFile("image", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".png")
	_, _ = fw.Write(data)
	_ = mw.Close()
	resp, err := http.Post(api+"/v1/jobs", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s %s", resp.Status, b)
	}
	var j ingest.JobResponse
	_ = json.Unmarshal(b, &j)
	return j.ID
}

func variantOf(t *testing.T, path string, variant int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	out := image.NewNRGBA(b)
	draw.Draw(out, b, img, b.Min, draw.Src)
	out.Pix[0] += uint8(variant)
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func job(t *testing.T, api, id string) ingest.JobResponse {
	t.Helper()
	resp, err := http.Get(api + "/v1/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j ingest.JobResponse
	_ = json.NewDecoder(resp.Body).Decode(&j)
	return j
}

func waitAll(t *testing.T, api string, ids []string, timeout time.Duration) map[string]ingest.JobResponse {
	t.Helper()
	deadline := time.Now().Add(timeout)
	out := map[string]ingest.JobResponse{}
	for time.Now().Before(deadline) && len(out) < len(ids) {
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			if j := job(t, api, id); j.Status.Final() {
				out[id] = j
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(out) < len(ids) {
		t.Fatalf("%d of %d jobs finished within %s", len(out), len(ids), timeout)
	}
	return out
}

// testPhotos returns the cached real photos, fetching them when missing.
func testPhotos(t *testing.T) []string {
	t.Helper()
	cache := &assets.Cache{Dir: assets.DefaultDir()}
	var photos []string
	for _, a := range []assets.Asset{assets.PhotoAstronaut, assets.PhotoCoffee, assets.PhotoChelsea, assets.PhotoRocket} {
		p, err := cache.Ensure(context.Background(), a)
		if err != nil {
			t.Fatalf("photo: %v (run `studio fetch photos`)", err)
		}
		photos = append(photos, p)
	}
	return photos
}

func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test with the real model skipped with -short")
	}
	photos := testPhotos(t)
	bin := buildBinary(t)
	natsPort, httpPort := port(t), port(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	api := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	start(t, bin, "up", "--auth", "off", "--stages", "ingest,preprocess,postprocess,store", "--data-dir", t.TempDir(),
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--nats-monitor", "", "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--ack-wait", "3s")
	waitHTTP(t, api+"/health/ready", 2*time.Minute)
	workers := map[string]*proc{}
	for _, name := range []string{"worker-a", "worker-b"} {
		workers[name] = start(t, bin, "worker", "--stage", "inference", "--nats-url", natsURL, "--threads", "1",
			"--concurrency", "1", "--worker-id", name, "--ack-wait", "3s", "--drain-timeout", "20s", "--http", "127.0.0.1:0")
	}

	t.Run("two inference workers split the work of one consumer group", func(t *testing.T) {
		var ids []string
		for i := 0; i < 6; i++ {
			ids = append(ids, post(t, api, photos[i%len(photos)], i+1))
		}
		done := waitAll(t, api, ids, 4*time.Minute)
		by := map[string]int{}
		for _, j := range done {
			if j.Status != schemas.StatusSucceeded {
				t.Fatalf("job %s: %s %+v", j.ID, j.Status, j.Error)
			}
			by[j.Stages[schemas.StageInference].Worker]++
		}
		if by["worker-a"] == 0 || by["worker-b"] == 0 {
			t.Errorf("inference split %v; want both workers to take jobs", by)
		}
	})

	t.Run("SIGKILL of a worker mid-job: every job still completes exactly once", func(t *testing.T) {
		var ids []string
		for i := 0; i < 4; i++ {
			ids = append(ids, post(t, api, photos[i%len(photos)], 100+i))
		}
		// Kill worker-a while it is running one of them. The two workers pull from one
		// consumer, so worker-a may take none of a handful of jobs, or end its runs
		// between two looks: while it has not been caught running one, more jobs go in.
		deadline := time.Now().Add(2 * time.Minute)
		killed := ""
		for round := 0; killed == "" && time.Now().Before(deadline); round++ {
			if round > 0 && round%100 == 0 && len(ids) < 16 {
				ids = append(ids, post(t, api, photos[len(ids)%len(photos)], 100+len(ids)))
			}
			for _, id := range ids {
				j := job(t, api, id)
				if st := j.Stages[schemas.StageInference]; st != nil && st.Worker == "worker-a" && st.FinishedAt.IsZero() {
					if err := workers["worker-a"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					_ = workers["worker-a"].cmd.Wait()
					killed = id
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if killed == "" {
			t.Fatal("worker-a never picked up a job")
		}
		done := waitAll(t, api, ids, 4*time.Minute)
		for _, j := range done {
			if j.Status != schemas.StatusSucceeded {
				t.Errorf("job %s: %s %+v", j.ID, j.Status, j.Error)
			}
		}
		if st := done[killed].Stages[schemas.StageInference]; st.Worker != "worker-b" || st.Attempts < 2 {
			t.Errorf("killed job's inference: worker %s attempt %d, want worker-b on attempt >= 2", st.Worker, st.Attempts)
		}
		requireOneResultEach(t, natsURL, ids)
	})
}
