package ingest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestMiddlewareRecoversPanicsAndLogsEveryRequest(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	s := NewService(Config{}, nil, nil, nil, nil, nil, nil, log)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /ok/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(s.middleware(mux, nil))
	t.Cleanup(srv.Close)

	res, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panic answered %d %s, want a 500 problem", res.StatusCode, res.Header.Get("Content-Type"))
	}
	id := res.Header.Get(HeaderRequestID)
	var panicked, logged bool
	for _, e := range hook.AllEntries() {
		if e.Message == "handler panicked" && e.Data["request_id"] == id && e.Data["stack"] != "" {
			panicked = true
		}
		if e.Message == "http request" && e.Data["request_id"] == id && e.Data["status_code"] == 500 {
			logged = true
		}
	}
	if !panicked || !logged {
		t.Fatalf("log entries %v: want the panic with its stack and the access log line", hook.AllEntries())
	}

	hook.Reset()
	res, err = http.Get(srv.URL + "/ok/42")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e := hook.LastEntry()
	if e == nil || e.Level != logrus.InfoLevel || e.Data["endpoint"] != "GET /ok/{id}" || e.Data["path"] != "/ok/42" ||
		e.Data["status_code"] != http.StatusTeapot || e.Data["method"] != "GET" || e.Data["trace_id"] != traceIDFor(res.Header.Get(HeaderRequestID)) {
		t.Fatalf("access log entry = %+v", e)
	}
	if _, ok := e.Data["latency_ms"].(float64); !ok {
		t.Fatalf("access log has no latency: %+v", e.Data)
	}
}

func TestTraceIDForRequestIDs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"},
		{"3F2504E0-4F89-11D3-9A0C-0305E82C3301", "3f2504e04f8911d39a0c0305e82c3301"},
		{"00000000000000000000000000000000", ""}, // all zeros is not a valid trace id: hashed
	}
	for _, tt := range tests {
		got := traceIDFor(tt.in)
		if tt.in == "00000000000000000000000000000000" {
			if len(got) != 32 || got == tt.in {
				t.Errorf("traceIDFor(%q) = %q, want a hashed id", tt.in, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("traceIDFor(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if a, b := traceIDFor("order-7"), traceIDFor("order-7"); a != b || len(a) != 32 {
		t.Errorf("an arbitrary request id maps to a stable trace id: %q %q", a, b)
	}
}
