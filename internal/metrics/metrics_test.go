package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/creativeai-studio/studio/internal/metrics"
)

// sample finds the series name{labels} in reg and returns its counter or gauge value,
// or a histogram's sample count; ok is false when there is no such series.
func sample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func mustSample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := sample(t, reg, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func TestSeriesAndLabels(t *testing.T) {
	m := metrics.New()
	m.InitStage("preprocess")
	m.InitJobs("remove-background", "isnet", "small")
	m.CountJob("remove-background", "isnet", "small", metrics.OutcomeSucceeded)
	m.StageDone("inference", "remove-background", 2*time.Second)
	m.DeadLettered("preprocess")
	m.Retried("preprocess")
	m.Retried("preprocess")
	m.InferenceRun("isnet", "small", "cpu", time.Second)
	m.Batch("isnet", 1)
	m.ModelLoaded("isnet", "small", 1500*time.Millisecond)
	reg := m.Registry()

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": "succeeded"}, 1},
		{"studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": "failed"}, 0},
		{"studio_jobs_total", map[string]string{"outcome": "cancelled"}, 0},
		{"studio_stage_duration_seconds", map[string]string{"stage": "inference", "task": "remove-background"}, 1},
		{"studio_dlq_messages_total", map[string]string{"stage": "preprocess"}, 1},
		{"studio_stage_retries_total", map[string]string{"stage": "preprocess"}, 2},
		{"studio_inference_seconds", map[string]string{"model": "isnet", "version": "small", "device": "cpu"}, 1},
		{"studio_batch_size", map[string]string{"model": "isnet"}, 1},
		{"studio_model_load_seconds", map[string]string{"model": "isnet", "version": "small"}, 1.5},
	}
	for _, tc := range tests {
		if got := mustSample(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if _, ok := sample(t, reg, name, nil); !ok && !(name == "process_cpu_seconds_total" && !procfsAvailable()) {
			t.Errorf("runtime/process collector series %s missing", name)
		}
	}
}

func procfsAvailable() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *metrics.Metrics
	m.InitStage("store")
	m.InitJobs("a", "b", "c")
	m.CountJob("a", "b", "c", metrics.OutcomeFailed)
	m.StageDone("store", "a", time.Second)
	m.DeadLettered("store")
	m.Retried("store")
	m.InferenceRun("a", "b", "cpu", time.Second)
	m.Batch("a", 2)
	m.ModelLoaded("a", "b", time.Second)
	m.PollQueues(context.Background(), time.Millisecond, nil, nil)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	rec := httptest.NewRecorder()
	m.InstrumentHTTP(h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 204 {
		t.Errorf("nil Metrics changed the response: %d", rec.Code)
	}
}

// api is a ServeMux with ingest's routes, behind a middleware that wraps the writer
// and, like ingest's, hands the mux a copy of the request; report says whether that
// middleware calls ReportRoute.
func api(report bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") })
	mux.HandleFunc("GET /v1/jobs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "cannot stream", 500)
			return
		}
		_, _ = io.WriteString(w, "event: job\n\n")
		f.Flush()
	})
	type key struct{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), key{}, "request-id"))
		if report {
			defer metrics.ReportRoute(r)
		}
		mux.ServeHTTP(w, r)
	})
}

func TestHTTPRouteIsThePatternNeverThePath(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report bool
	}{
		{"a middleware that reports the route gives the exact pattern", true},
		{"without the report, ids in the path are templated", false},
	} {
		t.Run(tc.name, func(t *testing.T) { testRoutes(t, tc.report) })
	}
}

func testRoutes(t *testing.T, report bool) {
	m := metrics.New()
	srv := httptest.NewServer(m.Serve(api(report)))
	defer srv.Close()

	do := func(method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	do("POST", "/v1/jobs")
	ids := []string{"01m87zvtjh4dew9bw9tz4z349h", "01m87zvtjwanxyq5mntas77yfa", "123"}
	for _, id := range ids {
		do("GET", "/v1/jobs/"+id)
	}
	if code := do("GET", "/v1/jobs/"+ids[0]+"/events"); code != 200 {
		t.Errorf("server-sent events through the middleware: status %d, want 200 (Flusher lost?)", code)
	}
	do("GET", "/no/such/path/1234")
	do("PURGE", "/v1/jobs")
	do("GET", "/metrics")

	reg := m.Registry()
	tests := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "/v1/jobs", "method": "POST", "status": "202"}, 1},
		{map[string]string{"route": "/v1/jobs/{id}", "method": "GET", "status": "200"}, 3},
		{map[string]string{"route": "/v1/jobs/{id}/events", "method": "GET", "status": "200"}, 1},
		{map[string]string{"route": "unmatched", "method": "GET", "status": "404"}, 1},
		{map[string]string{"route": "unmatched", "method": "OTHER", "status": "405"}, 1},
		{map[string]string{"route": "/metrics", "method": "GET", "status": "200"}, 1},
	}
	for _, tc := range tests {
		if got := mustSample(t, reg, "studio_http_request_duration_seconds", tc.labels); got != tc.want {
			t.Errorf("requests %v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if strings.Contains(l.GetValue(), ids[0]) || strings.Contains(l.GetValue(), "1234") {
					t.Errorf("%s has a raw path in label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestFallbackRoutesAreCapped(t *testing.T) {
	m := metrics.New()
	h := m.InstrumentHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i := range 200 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", fmt.Sprintf("/page-%c%c", 'a'+i%26, 'a'+i/26), nil))
	}
	mfs, _ := m.Registry().Gather()
	routes := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "studio_http_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
	}
	if len(routes) > 65 || !routes[metrics.RouteOther] {
		t.Errorf("%d distinct routes (other present: %v); want at most 64 plus %q", len(routes), routes[metrics.RouteOther], metrics.RouteOther)
	}
}

func TestAdminHandler(t *testing.T) {
	m := metrics.New()
	var notReady error = errors.New("starting: loading models")
	srv := httptest.NewServer(m.AdminHandler(func(context.Context) error { return notReady }))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/health/live"); code != 200 {
		t.Errorf("live = %d", code)
	}
	if code, body := get("/health/ready"); code != 503 || !strings.Contains(body, "loading models") {
		t.Errorf("ready while starting = %d %s, want 503 with the reason", code, body)
	}
	notReady = nil
	if code, _ := get("/health/ready"); code != 200 {
		t.Errorf("ready = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `studio_http_request_duration_seconds_count{method="GET",route="/health/ready",status="503"} 1`) {
		t.Errorf("/metrics = %d, missing the health requests:\n%s", code, body)
	}
}

func TestPollQueuesSumsModelsAndKeepsValuesOnError(t *testing.T) {
	m := metrics.New()
	reg := m.Registry()
	rounds := make(chan func() ([]metrics.QueueSample, error), 3)
	rounds <- func() ([]metrics.QueueSample, error) {
		return []metrics.QueueSample{
			{Stage: "inference", Tier: "premium", Pending: 3, AckPending: 1}, // model a
			{Stage: "inference", Tier: "premium", Pending: 2, AckPending: 2}, // model b
			{Stage: "preprocess", Tier: "free", Pending: 0, AckPending: 0},
		}, nil
	}
	rounds <- func() ([]metrics.QueueSample, error) { return nil, errors.New("nats: timeout") }
	polled := make(chan struct{}, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.PollQueues(ctx, 10*time.Millisecond, func(context.Context) ([]metrics.QueueSample, error) {
			defer func() { polled <- struct{}{} }()
			select {
			case f := <-rounds:
				return f()
			default:
				return nil, errors.New("no more rounds")
			}
		}, nil)
	}()
	for range 3 {
		<-polled
	}
	cancel()
	<-done
	if got := mustSample(t, reg, "studio_queue_depth", map[string]string{"stage": "inference", "tier": "premium"}); got != 8 {
		t.Errorf("inference/premium depth = %v, want 8 (3+1 + 2+2)", got)
	}
	if got := mustSample(t, reg, "studio_consumer_lag", map[string]string{"stage": "inference", "tier": "premium"}); got != 5 {
		t.Errorf("inference/premium lag = %v, want 5", got)
	}
	if got := mustSample(t, reg, "studio_queue_depth", map[string]string{"stage": "preprocess", "tier": "free"}); got != 0 {
		t.Errorf("preprocess/free depth = %v, want 0", got)
	}
}
