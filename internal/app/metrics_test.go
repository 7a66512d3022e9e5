package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// logSink collects JSON log lines from every goroutine of a test pipeline.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// lines returns the parsed lines; every line must be JSON.
func (s *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// jsonLog is the production logger shape (cmd/studio newLogger) writing to sink.
func jsonLog(sink io.Writer) logrus.FieldLogger {
	l := logrus.New()
	l.SetFormatter(&logrus.JSONFormatter{FieldMap: logrus.FieldMap{logrus.FieldKeyMsg: "message"}})
	if os.Getenv("STUDIO_TEST_LOGS") != "" {
		sink = io.MultiWriter(sink, os.Stderr)
	}
	l.SetOutput(sink)
	return l.WithField("service", "studio")
}

// submitTraced posts an image with a traceparent header and returns the job.
func submitTraced(t *testing.T, api, traceparent, filename string, data []byte) ingest.JobResponse {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("task", string(schemas.TaskRemoveBackground))
	fw, _ := mw.CreateFormFile("image", filename)
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", api+"/v1/jobs", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs = %s: %s", resp.Status, b)
	}
	var j ingest.JobResponse
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// scrape reads /metrics into name{sorted labels} -> value (histograms by their
// _count/_sum/_bucket lines), so checks read like the exposition format.
type scrape map[string]float64

func scrapeMetrics(t *testing.T, url string) (scrape, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %s", url, resp.Status)
	}
	out := scrape{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparsable sample %q", line)
		}
		out[line[:i]] = v
	}
	return out, string(b)
}

// find sums the samples of name whose labels include every want pair, and says whether
// there was one.
func (s scrape) find(name string, want map[string]string) (float64, bool) {
	total, found := 0.0, false
	for series, v := range s {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for k, val := range want {
			if !strings.Contains(","+labels, ","+k+"="+strconv.Quote(val)) {
				ok = false
				break
			}
		}
		if ok {
			total += v
			found = true
		}
	}
	return total, found
}

// seriesWant is a series that must be exposed, with at least min as its value.
type seriesWant struct {
	name   string
	labels map[string]string
	min    float64
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func truncatedJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[:b.Len()/3]
}

// TestMetricsLogsAndSpansOfIngestAndPreprocess runs ingest and the real preprocess stage
// (no model needed) with metrics, an in-memory span exporter and captured logs, so the
// wiring is checked by `go test -short` too.
func TestMetricsLogsAndSpansOfIngestAndPreprocess(t *testing.T) {
	ctx := context.Background()
	srv := streamstest.Start(t)
	blobStore, err := natsobj.Open(ctx, srv.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(ctx) }()
	m := metrics.New(metrics.WithTracerProvider(tp))
	var sink logSink
	log := jsonLog(&sink)

	cat := models.NewCatalog()
	if err := cat.Add(models.ISNet("small", "/nonexistent")); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Worker: "metrics-test", Concurrency: 2, DrainTimeout: 10 * time.Second}
	bus := &Bus{NC: srv.NC, JS: srv.JS}
	deps := Deps{Bus: bus, Blobs: m.InstrumentBlobs(blobStore, "jetstream"), Catalog: cat, Log: log, Metrics: m}
	stages, err := NewStage(ctx, cfg, schemas.StagePreprocess, deps)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewIngest(ctx, cfg, deps, func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(m.Serve(svc.Handler()))
	defer api.Close()

	// A job cancelled before preprocess picks it up is counted as cancelled there.
	jobStore, err := jobs.Open(ctx, srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := submitTraced(t, api.URL, "", "cancelled.png", testPNG(t, 32, 32))
	if _, err := jobStore.Update(ctx, cancelled.ID, func(r *schemas.JobRecord) error {
		r.Status = schemas.StatusCancelled
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- RunStages(runCtx, stages) }()
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		m.PollQueues(pollCtx, 50*time.Millisecond, QueueSource(bus, processors.StageNames(), cat), nil)
	}()
	defer func() {
		stopPoll()
		<-polled
		stop()
		if err := <-done; err != nil {
			t.Errorf("stages: %v", err)
		}
	}()

	const tid = "0af7651916cd43dd8448eb211c80319c"
	good := submitTraced(t, api.URL, "00-"+tid+"-b7ad6b7169203331-01", "gradient.png", testPNG(t, 64, 48))
	bad := submitTraced(t, api.URL, "", "broken.jpg", truncatedJPEG(t))
	streamstest.Eventually(t, time.Minute, func() bool {
		g, err1 := jobStore.Get(ctx, good.ID)
		b, err2 := jobStore.Get(ctx, bad.ID)
		return err1 == nil && err2 == nil && g.Stages[schemas.StagePreprocess] != nil &&
			!g.Stages[schemas.StagePreprocess].FinishedAt.IsZero() && b.Status == schemas.StatusFailed
	}, "jobs did not get through preprocess")

	// Metrics: the preprocess run, the failure, its dead letter, HTTP by route, storage.
	var got scrape
	streamstest.Eventually(t, 10*time.Second, func() bool {
		got, _ = scrapeMetrics(t, api.URL+"/metrics")
		_, ok := got.find("studio_dlq_messages_total", map[string]string{"stage": "preprocess"})
		v, _ := got.find("studio_dlq_messages_total", map[string]string{"stage": "preprocess"})
		c, _ := got.find("studio_jobs_total", map[string]string{"outcome": "cancelled"})
		return ok && v == 1 && c == 1
	}, "the corrupt JPEG was not counted in studio_dlq_messages_total, or the cancelled job in studio_jobs_total")
	checks := []seriesWant{
		{"studio_stage_duration_seconds_count", map[string]string{"stage": "preprocess", "task": "remove-background"}, 1},
		{"studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": "failed"}, 1},
		{"studio_jobs_total", map[string]string{"outcome": "succeeded"}, 0},
		{"studio_stage_retries_total", map[string]string{"stage": "preprocess"}, 0},
		{"studio_http_request_duration_seconds_count", map[string]string{"route": "/v1/jobs", "method": "POST", "status": "202"}, 3},
		{"studio_blob_op_seconds_count", map[string]string{"backend": "jetstream", "op": "put"}, 2},
		{"studio_blob_op_seconds_count", map[string]string{"backend": "jetstream", "op": "get"}, 2},
		{"studio_queue_depth", map[string]string{"stage": "preprocess", "tier": "normal"}, 0},
		{"studio_consumer_lag", map[string]string{"stage": "preprocess", "tier": "premium"}, 0},
		{"go_goroutines", nil, 1},
	}
	for _, c := range checks {
		if v, ok := got.find(c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", c.name, c.labels, v, ok, c.min)
		}
	}

	// Spans: one per stage run, the traced job's a child of the client's span.
	var traced []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() == tid {
			traced = append(traced, s)
		}
	}
	if len(traced) != 1 || traced[0].Name != "studio.preprocess" || traced[0].Parent.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("spans of the traced job: %+v; want one studio.preprocess span under the client's span", traced)
	}

	// Logs: JSON with the contract's fields; every line about the traced job has its trace id.
	lines := sink.lines(t)
	stagesSeen := map[string]bool{}
	for _, l := range lines {
		if l["service"] != "studio" || l["level"] == nil || l["message"] == nil {
			t.Errorf("log line without service/level/message: %v", l)
		}
		if l["job_id"] == good.ID {
			stagesSeen[fmt.Sprint(l["stage"])] = true
			if l["trace_id"] != tid || l["tenant"] == nil || l["user_id"] == nil {
				t.Errorf("line about the traced job lacks trace_id %s, tenant or user_id: %v", tid, l)
			}
		}
		if l["job_id"] == bad.ID && l["trace_id"] == nil {
			t.Errorf("line about the failed job has no trace_id: %v", l)
		}
		if l["message"] == "http request" && (l["endpoint"] == nil || l["method"] == nil || l["status_code"] == nil || l["latency_ms"] == nil) {
			t.Errorf("http line lacks endpoint/method/status_code/latency_ms: %v", l)
		}
	}
	if !stagesSeen["ingest"] || !stagesSeen["preprocess"] {
		t.Errorf("traced job logged by stages %v; want ingest and preprocess", stagesSeen)
	}
}

// startUpLogged is startUp with the caller's logger, so tests can read the logs.
// startUpLogged is startUp with the process's logs going to log.
func startUpLogged(t testing.TB, log logrus.FieldLogger, mod func(*Config)) (api, natsURL string) {
	t.Helper()
	natsPort := freePort(t)
	cfg := &Config{
		DataDir: t.TempDir(), NATSListen: fmt.Sprintf("127.0.0.1:%d", natsPort), HTTPListen: "127.0.0.1:0",
		Replicas: 1, CacheDir: assets.DefaultDir(), Device: "cpu", Sessions: 1, Models: "isnet@small,realesrgan@general-x4v3",
		Concurrency: 2, MaxUpload: imageio.DefaultMaxBytes, MaxPixels: imageio.DefaultMaxPixels,
		DrainTimeout: 20 * time.Second, Stages: "ingest,preprocess,inference,postprocess,store",
		LogLevel: "info", Worker: "e2e",
	}
	if mod != nil {
		mod(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Up(ctx, cfg, log, func(u string) { urls <- u }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Up returned %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Up did not stop within 60s")
		}
	})
	select {
	case u := <-urls:
		return u, fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	case err := <-done:
		t.Fatalf("Up failed: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatal("Up did not start within 5 minutes")
	}
	return "", ""
}

// TestMetricsAndTraceAfterRealJobs drives `studio up` with the real model: /metrics
// exposes every studio series with bounded labels, and the traceparent sent with the
// request is in every stage's log lines and in the result event.
func TestMetricsAndTraceAfterRealJobs(t *testing.T) {
	_, _, photo := realAssets(t)
	var sink logSink
	api, natsURL := startUpLogged(t, jsonLog(&sink), nil)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	results := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(schemas.ResultSubject("local", schemas.TaskRemoveBackground), results)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	input, err := os.ReadFile(photo(assets.PhotoCoffee))
	if err != nil {
		t.Fatal(err)
	}
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + tid + "-00f067aa0ba902b7-01"
	good := submitTraced(t, api, traceparent, "coffee.png", input)
	bad := submitTraced(t, api, "", "broken.jpg", truncatedJPEG(t))
	if final := waitFinal(t, api, good.ID, 5*time.Minute); final.Status != schemas.StatusSucceeded {
		t.Fatalf("job %s ended %s: %+v", good.ID, final.Status, final.Error)
	}
	if final := waitFinal(t, api, bad.ID, time.Minute); final.Status != schemas.StatusFailed {
		t.Fatalf("corrupt job ended %s, want failed", final.Status)
	}

	// The result event carries the request's traceparent, in its body and its header.
	deadline := time.After(30 * time.Second)
	for seen := false; !seen; {
		select {
		case msg := <-results:
			var ev schemas.ResultEvent
			if err := json.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.JobID != good.ID {
				continue
			}
			seen = true
			if ev.TraceParent != traceparent || trace.ID(msg.Header.Get("traceparent")) != tid {
				t.Errorf("result event traceparent %q (header %q), want %q", ev.TraceParent, msg.Header.Get("traceparent"), traceparent)
			}
		case <-deadline:
			t.Fatal("no result event for the traced job")
		}
	}

	// Every stage logged the traced job, and every line about it has its trace id.
	byStage := map[string]int{}
	for _, l := range sink.lines(t) {
		if l["job_id"] != good.ID {
			continue
		}
		byStage[fmt.Sprint(l["stage"])]++
		if l["trace_id"] != tid {
			t.Errorf("log line about the traced job has trace_id %v, want %s: %v", l["trace_id"], tid, l)
		}
	}
	for _, st := range []string{"ingest", "preprocess", "inference", "postprocess", "store"} {
		if byStage[st] == 0 {
			t.Errorf("no %s log line for the traced job (lines by stage: %v)", st, byStage)
		}
	}

	// /metrics after real jobs. Queue gauges come from a poll every few seconds.
	var got scrape
	var text string
	streamstest.Eventually(t, 15*time.Second, func() bool {
		got, text = scrapeMetrics(t, api+"/metrics")
		_, ok := got.find("studio_queue_depth", map[string]string{"stage": "store"})
		return ok
	}, "studio_queue_depth never appeared")
	series := []seriesWant{
		{"studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": "succeeded"}, 1},
		{"studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": "failed"}, 1},
		{"studio_jobs_total", map[string]string{"outcome": "cancelled"}, 0},
		{"studio_http_request_duration_seconds_count", map[string]string{"route": "/v1/jobs", "method": "POST", "status": "202"}, 2},
		{"studio_http_request_duration_seconds_count", map[string]string{"route": "/v1/jobs/{id}", "method": "GET", "status": "200"}, 1},
		{"studio_dlq_messages_total", map[string]string{"stage": "preprocess"}, 1},
		{"studio_model_load_seconds", map[string]string{"model": "isnet", "version": "small"}, 0.001},
		{"studio_inference_seconds_count", map[string]string{"model": "isnet", "version": "small", "device": "cpu"}, 1},
		{"studio_batch_size_count", map[string]string{"model": "isnet"}, 1},
		{"studio_blob_op_seconds_count", map[string]string{"backend": "jetstream", "op": "put"}, 1},
		{"studio_blob_op_seconds_count", map[string]string{"backend": "jetstream", "op": "get"}, 1},
		{"studio_blob_op_seconds_count", map[string]string{"backend": "jetstream", "op": "delete"}, 1},
		{"process_resident_memory_bytes", nil, 1},
		{"go_goroutines", nil, 1},
	}
	for _, st := range processors.StageNames() {
		series = append(series,
			seriesWant{"studio_stage_duration_seconds_count", map[string]string{"stage": string(st), "task": "remove-background"}, 1},
			seriesWant{"studio_stage_retries_total", map[string]string{"stage": string(st)}, 0},
			seriesWant{"studio_dlq_messages_total", map[string]string{"stage": string(st)}, 0},
		)
		for _, tier := range schemas.Tiers {
			for _, name := range []string{"studio_queue_depth", "studio_consumer_lag"} {
				series = append(series, seriesWant{name, map[string]string{"stage": string(st), "tier": string(tier)}, 0})
			}
		}
	}
	for _, s := range series {
		if v, ok := got.find(s.name, s.labels); !ok || v < s.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", s.name, s.labels, v, ok, s.min)
		}
	}
	// No job id, user or raw path ever becomes a label value.
	for _, forbidden := range []string{good.ID, bad.ID, "/v1/jobs/" + good.ID, "local"} {
		if strings.Contains(text, `"`+forbidden+`"`) {
			t.Errorf("/metrics has a label value %q", forbidden)
		}
	}
}
