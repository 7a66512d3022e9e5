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
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestChaos is the separate-process fault suite: a 3-node nats-server cluster (the
// server binary built from the module cache), MinIO when its binary is cached,
// ClickHouse with `studio sink` when clickhouse-server is installed, `studio ingest` and
// one `studio worker` per stage (two for inference), all started at the same moment.
// Then it runs its scenarios one after the other on that deployment (STUDIO_CHAOS_SCENARIOS,
// a comma-separated list of chaosScenarios' names, "every" for each of them and then
// "all"): each submits its own upscale jobs on 64 px inputs over HTTP while its faults
// run, waits for them to end for as long as they keep ending, and prints its row:
// submitted, succeeded, failed (by code), dead-lettered, stuck, final without a result
// event, duplicate results, analytics rows lost or doubled, the longest stall and the
// p99 latency. No job may be stuck, final without a result, or have two results, and
// every analytics row must be in ClickHouse exactly once. STUDIO_CHAOS_JOBS (jobs per
// scenario) and STUDIO_CHAOS_ROUNDS (fault rounds per scenario) size it; the short form
// (no variables) is chaosShortForm with 8 jobs and one round each; STUDIO_CHAOS_TABLE
// appends the rows to a file (`make chaos`).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster, MinIO, ClickHouse and seven studio processes, and kills them")
	}
	perScenario, rounds := chaosEnv(t, "STUDIO_CHAOS_JOBS", 8), chaosEnv(t, "STUDIO_CHAOS_ROUNDS", 1)
	selected := chaosSelect(t, os.Getenv("STUDIO_CHAOS_SCENARIOS"))
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
	var scenarios []chaosScenario
	for _, s := range selected {
		if s.needs != nil {
			if why := s.needs(ch); why != "" {
				t.Logf("scenario %s skipped: %s", s.name, why)
				continue
			}
		}
		scenarios = append(scenarios, s)
	}
	if slices.ContainsFunc(scenarios, func(s chaosScenario) bool { return s.diskFull }) {
		if why := ch.mountSmallStore(); why != "" {
			t.Logf("no small store, no disk-full faults: %s", why)
		}
	}
	t.Cleanup(ch.stopAll)
	ch.startMinIO()
	ch.startClickHouse()
	ch.startCluster(3)
	// Every studio process at once, while the cluster elects its meta leader.
	api := ch.startStudio()
	ch.ready = append(ch.ready, api+"/health/ready")
	ch.waitReady(10 * time.Minute)
	ch.checkRoutes()
	nc, err := nats.Connect(ch.natsURLs(), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(3))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := jobs.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ch.js, ch.store, ch.api = js, store, api
	ch.results = &streamCursor{js: js, stream: schemas.StreamResults}

	header := "| scenario | faults | submitted (refused 503) | succeeded | failed (by code) | dead-lettered (by stage: reason) | stuck | final, no result | duplicate results | analytics rows lost / doubled | longest stall | p99 latency | took (load) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	var rows []string
	for _, s := range scenarios {
		r := ch.runScenario(s, perScenario, rounds)
		rows = append(rows, r.row())
		t.Logf("\n%s\n%s", header, r.row())
		if f := os.Getenv("STUDIO_CHAOS_TABLE"); f != "" {
			if out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintln(out, r.row())
				out.Close()
			}
		}
		r.check(t)
	}
	t.Logf("every scenario:\n%s\n%s", header, strings.Join(rows, "\n"))
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
	stopOnce     sync.Once
	nodes        []*chaosProc
	natsPorts    []int
	monitorPorts []int
	// links[i][j] carries the routes node i opens to node j: a proxy in this process to
	// j's cluster port, the only way i can reach j (see startCluster), which the
	// net-split scenario cuts one way or both.
	links     [][]*streamstest.Proxy
	stages    []*chaosProc
	minio     *chaosProc
	minioAddr string
	// clickhouse is the ClickHouse server (nil when clickhouse-server is not installed),
	// sink the `studio sink` writing into its database chaos.
	clickhouse, sink *chaosProc
	clickhouseAddr   string
	// smallStore is the tmpfs mounted as the store of node smallNode (disk-full), or "".
	smallStore     string
	smallNode      int
	disabledBefore int // lines of the node's log saying JetStream was turned off, when it filled

	ready   []string // health URLs of ingest and the workers
	js      jetstream.JetStream
	store   *jobs.Store
	api     string
	results *streamCursor
	next    atomic.Int64 // the last job's input number: every job's image is new (no cache hit)
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

// stopAll stops every process (once: it is a cleanup twice over, see startCluster).
func (ch *chaos) stopAll() { ch.stopOnce.Do(ch.stopProcs) }

func (ch *chaos) stopProcs() {
	all := append(append([]*chaosProc{}, ch.stages...), ch.sink)
	all = append(all, ch.nodes...)
	all = append(all, ch.minio, ch.clickhouse)
	all = slices.DeleteFunc(all, func(p *chaosProc) bool { return p == nil })
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
				ch.t.Logf("--- %s log: warnings and errors ---\n%s\n--- %s log: last lines ---\n%s", p.name, tail(chaosWarnings(string(b)), 6000), p.name, tail(string(b), 2000))
			}
		}
	}
}

// chaosWarnings keeps the lines of a log that warn or report an error: a studio
// process's JSON lines at level warning or error, a nats-server's [WRN] and [ERR].
func chaosWarnings(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"warning"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, "[WRN]") || strings.Contains(l, "[ERR]") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func freePort(t *testing.T) int { return port(t) }

// startCluster starts n nats-server nodes whose routes all pass through proxies in this
// process: node i's only routes are ch.links[i][j], one proxy per other node j, so the
// test can cut what one node sends to another (see cutLinks). Each node advertises a
// cluster address where nothing listens (127.0.0.1:1): a node that learns of another
// through gossip would otherwise connect to its real cluster port, around the proxies;
// this way such a connection is refused once and the configured routes are the only
// ones.
func (ch *chaos) startCluster(n int) {
	cluster := make([]int, n)
	for i := range n {
		cluster[i] = freePort(ch.t)
		ch.natsPorts = append(ch.natsPorts, freePort(ch.t))
		ch.monitorPorts = append(ch.monitorPorts, freePort(ch.t))
	}
	ch.links = make([][]*streamstest.Proxy, n)
	for i := range n {
		ch.links[i] = make([]*streamstest.Proxy, n)
		for j := range n {
			if j != i {
				ch.links[i][j] = streamstest.StartProxy(ch.t, fmt.Sprintf("127.0.0.1:%d", cluster[j]))
			}
		}
	}
	// The proxies close at cleanup, before the cleanups registered earlier: stop the
	// nodes first, so that they shut down with their routes up.
	ch.t.Cleanup(ch.stopAll)
	for i := range n {
		var routes []string
		for _, l := range ch.links[i] {
			if l != nil {
				routes = append(routes, "nats://"+l.Addr())
			}
		}
		p := &chaosProc{name: fmt.Sprintf("nats-n%d", i), bin: ch.natsBin, log: filepath.Join(ch.dir, fmt.Sprintf("nats-n%d.log", i)),
			args: []string{"-n", fmt.Sprintf("n%d", i), "-a", "127.0.0.1", "-p", strconv.Itoa(ch.natsPorts[i]), "-m", strconv.Itoa(ch.monitorPorts[i]),
				"-js", "-sd", filepath.Join(ch.dir, fmt.Sprintf("n%d", i)), "--cluster_name", "chaos",
				"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]), "--cluster_advertise", "127.0.0.1:1",
				"--routes", strings.Join(routes, ",")}}
		if ch.smallStore != "" && i == ch.smallNode {
			// The store on the small tmpfs. Without a limit the server would take 75% of
			// that file system as its limit and refuse to hold the 3-replica streams
			// (it reserves each one's MaxBytes); with a limit the real disk is smaller
			// than the server believes, as when something else fills a shared disk.
			conf := filepath.Join(ch.dir, fmt.Sprintf("n%d.conf", i))
			body := fmt.Sprintf("jetstream {\n  store_dir: %q\n  max_file_store: 8GB\n}\n", filepath.Join(ch.smallStore, "js"))
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				ch.t.Fatal(err)
			}
			sd := slices.Index(p.args, "-sd") // the store is the config's
			p.args = append([]string{"-c", conf}, slices.Delete(p.args, sd, sd+2)...)
		}
		ch.nodes = append(ch.nodes, p)
		ch.start(p)
	}
	for _, port := range ch.natsPorts {
		waitTCP(ch.t, fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second)
	}
}

// checkRoutes fails the test when a route between two nodes does not pass through a
// proxy: each node counts every route it has (/routez), so the nodes count each route
// twice, and the proxies count each one of them once. Routes come and go while the
// cluster settles (a duplicate is closed): it compares for up to a minute.
func (ch *chaos) checkRoutes() {
	client := &http.Client{Timeout: 5 * time.Second}
	var counted, proxied int
	for range 60 {
		counted, proxied = 0, 0
		for _, mp := range ch.monitorPorts {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/routez", mp))
			if err != nil {
				continue
			}
			var v struct {
				NumRoutes int `json:"num_routes"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			counted += v.NumRoutes
		}
		for _, row := range ch.links {
			for _, l := range row {
				if l != nil {
					proxied += l.Open()
				}
			}
		}
		if counted > 0 && counted == 2*proxied {
			ch.t.Logf("every route through a proxy: %d routes (pooled), %d counted by the nodes", proxied, counted)
			return
		}
		time.Sleep(time.Second)
	}
	ch.t.Errorf("the nodes count %d route ends, the proxies carry %d routes (want twice as many ends): a route goes around the proxies", counted, proxied)
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
// workerHTTP is the address of a worker's health endpoints; waitReady polls them.
func (ch *chaos) workerHTTP() string {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(ch.t))
	ch.ready = append(ch.ready, "http://"+addr+"/health/ready")
	return addr
}

// waitReady waits until ingest and every worker answer ready, so the first scenario
// does not count the start-up. A process that exits meanwhile fails the test with its
// log (it must wait for the cluster, not give up).
func (ch *chaos) waitReady(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, url := range ch.ready {
		for {
			for _, p := range ch.stages {
				select {
				case <-p.done:
					b, _ := os.ReadFile(p.log)
					ch.t.Fatalf("%s exited during start-up:\n%s", p.name, tail(string(b), 3000))
				default:
				}
			}
			if httpOK(url) {
				break
			}
			if time.Now().After(deadline) {
				ch.t.Fatalf("%s not ready within %s", url, timeout)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func (ch *chaos) startStudio() string {
	// A loaded 2-core machine provisions the 3-replica topology in minutes, not seconds
	// (each stream's creation waits for its election): every process waits up to 8.
	common := []string{"--nats-url", ch.natsURLs(), "--replicas", "3", "--ack-wait", "5s", "--drain-timeout", "5s", "--startup-wait", "8m"}
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
	add("preprocess", "worker", "--stage", "preprocess", "--http", ch.workerHTTP())
	add("inference", "worker", "--stage", "inference", "--models", "realesrgan@general-x4v3", "--threads", "1", "--http", ch.workerHTTP())
	// A second inference replica: the slow-stage scenario stops one while the other
	// takes its redelivered messages.
	add("inference-2", "worker", "--stage", "inference", "--models", "realesrgan@general-x4v3", "--threads", "1", "--http", ch.workerHTTP())
	add("postprocess", "worker", "--stage", "postprocess", "--http", ch.workerHTTP())
	add("store", "worker", "--stage", "store", "--http", ch.workerHTTP())
	if ch.clickhouse != nil {
		ch.sink = &chaosProc{name: "sink", bin: ch.bin, log: filepath.Join(ch.dir, "sink.log"), env: testEnv(),
			args: []string{"sink", "--nats-url", ch.natsURLs(), "--replicas", "3", "--clickhouse-addr", ch.clickhouseAddr,
				"--clickhouse-database", "chaos", "--sink-flush-interval", "500ms", "--worker-id", "sink", "--startup-wait", "8m"}}
	}
	for _, p := range ch.stages {
		ch.start(p)
	}
	if ch.sink != nil {
		ch.start(ch.sink)
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
func (ch *chaos) metaLeader() int { return ch.metaLeaderSeenBy() }

// settledLeader waits up to 15 s for the cluster to have a meta leader (a fault just
// before may have left it electing) and returns it, or -1.
func (ch *chaos) settledLeader() int {
	leader := ch.metaLeader()
	for began := time.Now(); leader < 0 && time.Since(began) < 15*time.Second; leader = ch.metaLeader() {
		time.Sleep(500 * time.Millisecond)
	}
	return leader
}

// nodeName is "n<i>", or "none" for -1.
func nodeName(i int) string {
	if i < 0 {
		return "none"
	}
	return fmt.Sprintf("n%d", i)
}

// metaLeaderSeenBy is the meta leader as the first of nodes that knows one says (every
// node when none is named), or -1.
func (ch *chaos) metaLeaderSeenBy(nodes ...int) int {
	if len(nodes) == 0 {
		for i := range ch.monitorPorts {
			nodes = append(nodes, i)
		}
	}
	leader := -1
	client := &http.Client{Timeout: 5 * time.Second}
	for _, i := range nodes {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", ch.monitorPorts[i]))
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

// killFollower kill -9s a node that is not the JetStream meta leader and starts it again
// after down: the leader stays, the streams and consumers the node led elect new
// leaders, and the node catches up when it is back.
func (ch *chaos) killFollower(down time.Duration) string {
	leader := ch.settledLeader()
	n := (max(leader, 0) + 1 + rand.IntN(len(ch.nodes)-1)) % len(ch.nodes)
	ch.nodes[n].kill9()
	time.Sleep(down)
	ch.start(ch.nodes[n])
	if leader < 0 {
		return fmt.Sprintf("kill -9 node n%d (no meta leader found), %s down", n, down)
	}
	return fmt.Sprintf("kill -9 follower n%d (meta leader n%d), %s down", n, leader, down)
}

// cutLinks holds the bytes each pair's first node sends to its second, on every route
// between them (either may have opened it: on from's links to to they flow Up, on to's
// links to from Down), and lets every other byte through; cutLinks() heals.
func (ch *chaos) cutLinks(cuts ...[2]int) {
	held := map[*streamstest.Proxy]streamstest.Direction{}
	for _, c := range cuts {
		from, to := c[0], c[1]
		held[ch.links[from][to]] |= streamstest.Up
		held[ch.links[to][from]] |= streamstest.Down
	}
	for _, row := range ch.links {
		for _, l := range row {
			if l != nil {
				l.Hold(held[l])
			}
		}
	}
}

// splitNode partitions the network between the nodes for down (past the election
// timeout, 4-9 s), then heals it; the processes keep running, and the studio
// processes' own connections to the nodes stay up. Round 0 (mod 3): a one-way split,
// the meta leader's peers hear nothing from it while it hears them (they elect another
// leader; it must step down on their new term). Round 1: the other way round for a
// follower, which hears nothing while its peers hear it (it calls elections they
// receive). Round 2: the meta leader cut off both ways.
func (ch *chaos) splitNode(round int, down time.Duration) string {
	leader := ch.settledLeader()
	x, role := max(leader, 0), "meta leader"
	if leader < 0 {
		role = "node (no meta leader found)"
	}
	if round%3 == 1 {
		x, role = (x+1+rand.IntN(len(ch.nodes)-1))%len(ch.nodes), "follower"
	}
	var cuts [][2]int
	var others []int
	for o := range ch.nodes {
		if o == x {
			continue
		}
		others = append(others, o)
		switch round % 3 {
		case 0:
			cuts = append(cuts, [2]int{x, o})
		case 1:
			cuts = append(cuts, [2]int{o, x})
		default:
			cuts = append(cuts, [2]int{x, o}, [2]int{o, x})
		}
	}
	what := map[int]string{
		0: fmt.Sprintf("one-way split: %s n%d unheard by its peers (hears them)", role, x),
		1: fmt.Sprintf("one-way split: %s n%d hears no peer (they hear it)", role, x),
		2: fmt.Sprintf("split: %s n%d cut off both ways", role, x),
	}[round%3]
	ch.cutLinks(cuts...)
	time.Sleep(down)
	during := ch.metaLeaderSeenBy(others...)
	ch.cutLinks()
	return fmt.Sprintf("%s, %s (meta leader at the end: %s)", what, down, nodeName(during))
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

// killMinIO waits until stage workers hold jobs (messages delivered to them and not
// yet acknowledged: being read, run or written), for up to wait, so that the outage
// catches them mid-stage; then it kill -9s MinIO and starts it again after down.
func (ch *chaos) killMinIO(wait, down time.Duration) string {
	var held map[schemas.Stage]int
	for began := time.Now(); time.Since(began) < wait; time.Sleep(20 * time.Millisecond) {
		if held = ch.inStages(); len(held) > 0 {
			break
		}
	}
	ch.minio.kill9()
	time.Sleep(down)
	ch.start(ch.minio)
	if len(held) == 0 {
		return fmt.Sprintf("kill -9 MinIO (no job inside a stage within %s), %s down", wait, down)
	}
	var parts []string
	for _, st := range processors.StageNames() {
		if held[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, held[st]))
		}
	}
	return fmt.Sprintf("kill -9 MinIO %s (%s), %s down", faultMidStage, strings.Join(parts, ", "), down)
}

// faultMidStage is in the text of a fault that caught jobs inside a stage.
const faultMidStage = "with jobs inside stages"

// inStages counts, per stage, the messages its workers hold: delivered to them and not
// yet acknowledged (every consumer of the stage, one per tier or model).
func (ch *chaos) inStages() map[schemas.Stage]int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	held := map[schemas.Stage]int{}
	for _, st := range processors.Stages {
		s, err := ch.js.Stream(ctx, st.Stream.Name)
		if err != nil {
			continue
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			if strings.HasPrefix(info.Name, st.Durable) && info.NumAckPending > 0 {
				held[st.Name] += info.NumAckPending
			}
		}
	}
	return held
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

func truncateReason(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}
