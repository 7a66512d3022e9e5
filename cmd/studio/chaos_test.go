//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// TestChaos is the separate-process fault suite: a 3-node nats-server cluster (the
// server binary built from the module cache), MinIO when its binary is cached, `studio
// ingest` and one `studio worker` per stage, all started at the same moment; upscale
// jobs on 64 px inputs submitted over HTTP while, round after round, a random stage
// process is SIGKILLed and restarted, the JetStream meta leader is kill -9'd and
// restarted after 10 s, and MinIO is kill -9'd for 10 s. The counts come from the
// REQUESTS, RESULTS and DLQ streams and the jobs bucket; no job may be stuck (not final
// once the load and the faults are over) or have two results. The short form (30
// jobs, one round) runs with the tests; `make chaos` runs the long form
// (STUDIO_CHAOS_JOBS, STUDIO_CHAOS_ROUNDS) and STUDIO_CHAOS_TABLE appends its row to
// a file.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster, MinIO and five studio processes, and kills them")
	}
	total, rounds := chaosEnv(t, "STUDIO_CHAOS_JOBS", 30), chaosEnv(t, "STUDIO_CHAOS_ROUNDS", 1)
	for _, a := range []assets.Asset{assets.ONNXRuntimeCPU} {
		if _, err := (&assets.Cache{Dir: assets.DefaultDir()}).Ensure(context.Background(), a); err != nil {
			t.Skipf("ONNX Runtime is not cached (run `studio fetch runtime models`): %v", err)
		}
	}
	ch := &chaos{t: t, dir: t.TempDir(), bin: studioBinary(t)}
	ch.natsBin = filepath.Join(ch.dir, "nats-server")
	if out, err := exec.Command("go", "build", "-o", ch.natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("build nats-server from the module cache: %v\n%s", err, out)
	}
	t.Cleanup(ch.stopAll)
	ch.startMinIO()
	ch.startCluster(3)
	// Every studio process at once, while the cluster elects its meta leader.
	api := ch.startStudio()
	waitHTTP(t, api+"/health/ready", 3*time.Minute)
	nc, err := nats.Connect(ch.natsURLs(), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// Load and faults at once.
	began := time.Now()
	var ids sync.Map
	var submitted, refused atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= total; i = int(next.Add(1)) {
				for attempt := 0; ; attempt++ {
					id, status, err := chaosSubmit(api, i)
					if err == nil && status == http.StatusAccepted {
						ids.Store(id, true)
						submitted.Add(1)
						break
					}
					refused.Add(1) // a 503 during an outage, or the connection refused
					if attempt > 60 {
						t.Errorf("job %d refused 60 times: %d %v", i, status, err)
						break
					}
					time.Sleep(time.Second)
				}
			}
		}()
	}
	var faults []string
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for r := 0; r < rounds; r++ {
			faults = append(faults, ch.killStage())
			time.Sleep(3 * time.Second)
			faults = append(faults, ch.killMetaLeader(10*time.Second))
			time.Sleep(3 * time.Second)
			faults = append(faults, ch.pauseNode(r, 10*time.Second))
			time.Sleep(3 * time.Second)
			if ch.minio != nil {
				faults = append(faults, ch.killMinIO(10*time.Second))
				time.Sleep(3 * time.Second)
			}
		}
	}()
	wg.Wait()
	<-faultsDone
	loadEnded := time.Now()

	var want []string
	ids.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	store, err := jobs.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	// Every job must end: wait for them up to a bound well past the stages' retries.
	final := func() (open []string) {
		for _, id := range want {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rec, err := store.Get(ctx, id)
			cancel()
			if err != nil || !rec.Status.Final() {
				open = append(open, id)
			}
		}
		return open
	}
	// The wait follows progress, not the wall clock: on a loaded machine the cluster may
	// take minutes to drain, but it keeps finishing jobs. It ends when every job is
	// final, when no job has become final for chaosStall (past the stages' retries:
	// AckWait 5 s x 5 deliveries plus backoff), or after chaosWaitMax in all.
	const chaosStall, chaosWaitMax = 2 * time.Minute, 15 * time.Minute
	stuck := final()
	for waitStart, lastProgress := time.Now(), time.Now(); len(stuck) > 0 && time.Since(lastProgress) < chaosStall && time.Since(waitStart) < chaosWaitMax; {
		time.Sleep(2 * time.Second)
		open := final()
		if len(open) < len(stuck) {
			lastProgress = time.Now()
		}
		stuck = open
	}
	c := ch.count(js, want)
	c.submitted, c.refused, c.stuck = int(submitted.Load()), int(refused.Load()), len(stuck)
	// A job whose record is final but which has no result event: its client's event
	// stream and its user's active-job slot wait for it.
	var silent []string
	for _, id := range want {
		if c.results[id] > 0 || slices.Contains(stuck, id) {
			continue
		}
		rec, err := store.Get(context.Background(), id)
		if err == nil {
			silent = append(silent, fmt.Sprintf("%s %s at %s", id, rec.Status, rec.Stage))
		}
	}
	c.noResult = len(silent)
	t.Logf("faults: %s", strings.Join(faults, "; "))
	row := c.row(fmt.Sprintf("%d rounds", rounds), time.Since(began).Round(time.Second), loadEnded.Sub(began).Round(time.Second))
	t.Logf("\n| scenario | submitted (refused 503) | succeeded | failed (by code) | dead-lettered (by stage: reason) | stuck | final, no result | duplicate results | took |\n|---|---|---|---|---|---|---|---|---|\n%s", row)
	if f := os.Getenv("STUDIO_CHAOS_TABLE"); f != "" {
		if out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(out, row)
			out.Close()
		}
	}
	if c.stuck > 0 {
		t.Errorf("%d jobs stuck (not final %s after the load ended): %v", c.stuck, time.Since(loadEnded).Round(time.Second), first(stuck, 5))
	}
	if c.noResult > 0 {
		t.Errorf("%d jobs are final with no result event: %v", c.noResult, first(silent, 5))
	}
	if c.duplicates > 0 {
		t.Errorf("%d jobs have more than one result", c.duplicates)
	}
	if c.submitted != total {
		t.Errorf("%d of %d jobs were accepted", c.submitted, total)
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func chaosEnv(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return def
}

// chaos holds the processes of one run; each can be killed and started again with the
// same arguments.
type chaos struct {
	t            *testing.T
	dir, bin     string
	natsBin      string
	mu           sync.Mutex
	nodes        []*chaosProc
	natsPorts    []int
	monitorPorts []int
	stages       []*chaosProc
	minio        *chaosProc
	minioAddr    string
}

type chaosProc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (ch *chaos) start(p *chaosProc) {
	ch.t.Helper()
	f, err := os.OpenFile(p.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		ch.t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = f, f, p.env
	// Nothing outlives the test binary, even one killed by its timeout.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		ch.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); f.Close(); close(done) }(p.cmd, p.done)
}

// kill9 SIGKILLs p and waits for it to be gone.
func (p *chaosProc) kill9() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (ch *chaos) stopAll() {
	all := append(append([]*chaosProc{}, ch.stages...), ch.nodes...)
	if ch.minio != nil {
		all = append(all, ch.minio)
	}
	for _, p := range all {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(syscall.SIGCONT) // a node left paused cannot stop
			_ = p.cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, p := range all {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.kill9()
		}
		if ch.t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				ch.t.Logf("--- %s log ---\n%s", p.name, tail(string(b), 3000))
			}
		}
	}
}

func freePort(t *testing.T) int { return port(t) }

func (ch *chaos) startCluster(n int) {
	var routes []string
	cluster := make([]int, n)
	for i := range n {
		cluster[i] = freePort(ch.t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]))
		ch.natsPorts = append(ch.natsPorts, freePort(ch.t))
		ch.monitorPorts = append(ch.monitorPorts, freePort(ch.t))
	}
	for i := range n {
		p := &chaosProc{name: fmt.Sprintf("nats-n%d", i), bin: ch.natsBin, log: filepath.Join(ch.dir, fmt.Sprintf("nats-n%d.log", i)),
			args: []string{"-n", fmt.Sprintf("n%d", i), "-a", "127.0.0.1", "-p", strconv.Itoa(ch.natsPorts[i]), "-m", strconv.Itoa(ch.monitorPorts[i]),
				"-js", "-sd", filepath.Join(ch.dir, fmt.Sprintf("n%d", i)), "--cluster_name", "chaos",
				"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]), "--routes", strings.Join(routes, ",")}}
		ch.nodes = append(ch.nodes, p)
		ch.start(p)
	}
	for _, port := range ch.natsPorts {
		waitTCP(ch.t, fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second)
	}
}

func (ch *chaos) natsURLs() string {
	var urls []string
	for _, p := range ch.natsPorts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(urls, ",")
}

func (ch *chaos) startMinIO() {
	bins, _ := filepath.Glob(filepath.Join(assets.DefaultDir(), "bin", "minio-*"))
	if len(bins) == 0 {
		ch.t.Log("MinIO is not cached (scripts/minio.sh builds it): objects go to the JetStream object store, no MinIO outage")
		return
	}
	ch.minioAddr = fmt.Sprintf("127.0.0.1:%d", freePort(ch.t))
	ch.minio = &chaosProc{name: "minio", bin: bins[0], log: filepath.Join(ch.dir, "minio.log"),
		args: []string{"server", filepath.Join(ch.dir, "minio"), "--address", ch.minioAddr, "--console-address", fmt.Sprintf("127.0.0.1:%d", freePort(ch.t)), "--quiet"},
		env:  append(os.Environ(), "MINIO_ROOT_USER=chaos", "MINIO_ROOT_PASSWORD=chaos-secret-key", "MINIO_BROWSER=off")}
	ch.start(ch.minio)
	waitHTTP(ch.t, "http://"+ch.minioAddr+"/minio/health/live", time.Minute)
	mc, err := minio.New(ch.minioAddr, &minio.Options{Creds: credentials.NewStaticV4("chaos", "chaos-secret-key", "")})
	if err != nil {
		ch.t.Fatal(err)
	}
	if err := mc.MakeBucket(context.Background(), "chaos", minio.MakeBucketOptions{}); err != nil {
		ch.t.Fatalf("create the chaos bucket: %v", err)
	}
}

// startStudio starts ingest and one worker per stage, all at once, and returns the API.
func (ch *chaos) startStudio() string {
	common := []string{"--nats-url", ch.natsURLs(), "--replicas", "3", "--ack-wait", "5s", "--drain-timeout", "5s"}
	if ch.minio != nil {
		common = append(common, "--s3-endpoint", ch.minioAddr, "--s3-bucket", "chaos", "--s3-access-key", "chaos", "--s3-secret-key", "chaos-secret-key")
	}
	httpPort := freePort(ch.t)
	add := func(name string, args ...string) {
		p := &chaosProc{name: name, bin: ch.bin, log: filepath.Join(ch.dir, name+".log"), env: testEnv(),
			args: append(append(args, common...), "--worker-id", name)}
		ch.stages = append(ch.stages, p)
	}
	add("ingest", "ingest", "--auth", "off", "--http", fmt.Sprintf("127.0.0.1:%d", httpPort))
	add("preprocess", "worker", "--stage", "preprocess", "--http", "127.0.0.1:0")
	add("inference", "worker", "--stage", "inference", "--models", "realesrgan@general-x4v3", "--threads", "1", "--http", "127.0.0.1:0")
	add("postprocess", "worker", "--stage", "postprocess", "--http", "127.0.0.1:0")
	add("store", "worker", "--stage", "store", "--http", "127.0.0.1:0")
	for _, p := range ch.stages {
		ch.start(p)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", httpPort)
}

// killStage SIGKILLs a random worker process and starts it again a second later.
func (ch *chaos) killStage() string {
	workers := ch.stages[1:]
	p := workers[rand.IntN(len(workers))]
	p.kill9()
	time.Sleep(time.Second)
	ch.start(p)
	return "SIGKILL " + p.name
}

// metaLeader is the index of the node that is the JetStream meta leader, or -1.
func (ch *chaos) metaLeader() int {
	leader := -1
	for _, mp := range ch.monitorPorts {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", mp))
		if err != nil {
			continue
		}
		var v struct {
			Meta struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.Meta.Leader != "" {
			fmt.Sscanf(v.Meta.Leader, "n%d", &leader)
			break
		}
	}
	return leader
}

// killMetaLeader kill -9s the JetStream meta leader and starts it again after down.
func (ch *chaos) killMetaLeader(down time.Duration) string {
	leader := ch.metaLeader()
	if leader < 0 {
		return "no meta leader found"
	}
	ch.nodes[leader].kill9()
	time.Sleep(down)
	ch.start(ch.nodes[leader])
	return fmt.Sprintf("kill -9 meta leader n%d, %s down", leader, down)
}

// pauseNode partitions a node from the cluster: SIGSTOP for down (longer than the
// election timeout), then SIGCONT. Even rounds pause the meta leader (the others elect
// a new one; the old one must step down when it wakes), odd rounds a follower.
func (ch *chaos) pauseNode(round int, down time.Duration) string {
	leader := ch.metaLeader()
	n, role := leader, "meta leader"
	if round%2 == 1 || leader < 0 {
		n, role = (max(leader, 0)+1+rand.IntN(len(ch.nodes)-1))%len(ch.nodes), "follower"
	}
	p := ch.nodes[n]
	if p.cmd == nil || p.cmd.Process == nil {
		return "no node to pause"
	}
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(down)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	return fmt.Sprintf("SIGSTOP %s n%d, %s", role, n, down)
}

func (ch *chaos) killMinIO(down time.Duration) string {
	ch.minio.kill9()
	time.Sleep(down)
	ch.start(ch.minio)
	return fmt.Sprintf("kill -9 MinIO, %s down", down)
}

func waitTCP(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not listening within %s", addr, timeout)
}

// chaosSubmit posts upscale job i: a 64 px image with distinct pixels.
func chaosSubmit(api string, i int) (id string, status int, err error) {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	r := rand.New(rand.NewPCG(uint64(i), 7))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.NRGBA{uint8(r.IntN(256)), uint8(x * 4), uint8(y * 4), 255})
		}
	}
	var pic bytes.Buffer
	_ = png.Encode(&pic, img)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("task", "upscale")
	fw, _ := mw.CreateFormFile("image", fmt.Sprintf("chaos-%d.png", i))
	_, _ = fw.Write(pic.Bytes())
	_ = mw.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(api+"/v1/jobs", mw.FormDataContentType(), &body)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var j struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &j)
	return j.ID, resp.StatusCode, nil
}

// chaosCounts is one row of the fault table.
type chaosCounts struct {
	submitted, refused, requests, succeeded, failed, dead, stuck, noResult, duplicates int
	failedBy, deadBy                                                                   map[string]int
	results                                                                            map[string]int // result events per job
}

// count reads REQUESTS, RESULTS and the DLQ.
func (ch *chaos) count(js jetstream.JetStream, ids []string) chaosCounts {
	c := chaosCounts{failedBy: map[string]int{}, deadBy: map[string]int{}}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	results := map[string]int{}
	c.results = results
	each := func(stream string, fn func(*jetstream.RawStreamMsg)) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			ch.t.Errorf("stream %s: %v", stream, err)
			return
		}
		info, err := st.Info(ctx)
		if err != nil {
			ch.t.Errorf("stream %s: %v", stream, err)
			return
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			if m, err := st.GetMsg(ctx, seq); err == nil {
				fn(m)
			}
		}
	}
	each(schemas.StreamRequests, func(*jetstream.RawStreamMsg) { c.requests++ })
	each(schemas.StreamResults, func(m *jetstream.RawStreamMsg) {
		var ev schemas.ResultEvent
		if json.Unmarshal(m.Data, &ev) != nil || !want[ev.JobID] {
			return
		}
		results[ev.JobID]++
		if results[ev.JobID] > 1 {
			c.duplicates++
			return
		}
		if ev.Status == schemas.StatusSucceeded {
			c.succeeded++
			return
		}
		c.failed++
		code := "unknown"
		if ev.Error != nil {
			code = ev.Error.Code
		}
		c.failedBy[code]++
	})
	each(schemas.StreamDLQ, func(m *jetstream.RawStreamMsg) {
		c.dead++
		reason := m.Header.Get(streams.HeaderDLQStage) + ": " + m.Header.Get(streams.HeaderDLQReason)
		c.deadBy[truncateReason(reason)]++
	})
	return c
}

func truncateReason(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}

func (c chaosCounts) row(scenario string, took, load time.Duration) string {
	by := func(m map[string]int) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		if len(parts) == 0 {
			return ""
		}
		return " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("| %s | %d (%d) | %d | %d%s | %d%s | %d | %d | %d | %s (load %s) |", scenario, c.submitted, c.refused, c.succeeded,
		c.failed, by(c.failedBy), c.dead, by(c.deadBy), c.stuck, c.noResult, c.duplicates, took, load)
}
