package metrics

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Route labels that are not patterns: requests no pattern matched (404, 405), and
// paths past the cap on fallback routes.
const (
	RouteUnmatched = "unmatched"
	RouteOther     = "other"
)

// maxFallbackRoutes caps the distinct routes derived from paths (see InstrumentHTTP).
const maxFallbackRoutes = 64

// InstrumentHTTP records every request of next in studio_http_request_duration_seconds.
// The route label is the ServeMux pattern that served the request, without its method
// ("/v1/jobs/{id}"): read from Request.Pattern when the mux routed the request value it
// was given, or from ReportRoute when a middleware in between handed the mux a copy
// (r.WithContext). Failing both, it is the path with id-like segments replaced by {id}
// (404 and 405 become "unmatched"), and past 64 such routes "other", so the label set
// stays bounded whatever paths clients send.
func (m *Metrics) InstrumentHTTP(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	var fallback fallbackRoutes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		slot := &routeSlot{}
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, slot))
		observe := func(status int) {
			rt := r.Pattern
			if rt == "" {
				rt = slot.get()
			}
			rt = stripMethod(rt)
			if rt == "" {
				rt = fallback.route(r.URL.Path, status)
			}
			m.httpDuration.WithLabelValues(rt, method(r.Method), strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		}
		defer func() {
			if sw.status == 0 {
				if p := recover(); p != nil {
					observe(http.StatusInternalServerError) // before the server aborts it
					panic(p)
				}
				sw.status = http.StatusOK
			}
			observe(sw.status)
		}()
		next.ServeHTTP(sw, r)
	})
}

// ReportRoute tells InstrumentHTTP which pattern served r. Call it after the mux has
// routed (r.Pattern is set), from a middleware that passes the mux a copy of the
// request, such as one that adds context values; elsewhere it does nothing.
func ReportRoute(r *http.Request) {
	if slot, ok := r.Context().Value(routeKey{}).(*routeSlot); ok && r.Pattern != "" {
		slot.set(r.Pattern)
	}
}

type routeKey struct{}

// routeSlot carries the pattern back up; handlers may report from other goroutines.
type routeSlot struct {
	mu      sync.Mutex
	pattern string
}

func (s *routeSlot) set(p string) {
	s.mu.Lock()
	s.pattern = p
	s.mu.Unlock()
}

func (s *routeSlot) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pattern
}

// Serve returns api with GET /metrics beside it, the whole instrumented. Requests for
// /metrics never reach api.
func (m *Metrics) Serve(api http.Handler) http.Handler {
	scrape := m.Handler()
	return m.InstrumentHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			ReportRoute(patterned(r, "GET /metrics"))
			scrape.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
}

// patterned returns a shallow copy of r carrying pattern, for ReportRoute.
func patterned(r *http.Request, pattern string) *http.Request {
	c := *r
	c.Pattern = pattern
	return &c
}

// AdminHandler is the HTTP surface of a process without an API (a stage worker):
// /metrics, /health/live (200 while the process runs) and /health/ready (200 when
// ready returns nil, else 503 with the reason), as JSON like ingest's.
func (m *Metrics) AdminHandler(ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, http.StatusOK, "ok", "")
	})
	readyFn := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if ready != nil {
			if err := ready(ctx); err != nil {
				writeHealth(w, http.StatusServiceUnavailable, "unavailable", err.Error())
				return
			}
		}
		writeHealth(w, http.StatusOK, "ok", "")
	}
	mux.HandleFunc("GET /health/ready", readyFn)
	mux.HandleFunc("GET /health", readyFn)
	return m.InstrumentHTTP(mux)
}

func writeHealth(w http.ResponseWriter, code int, status, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if reason == "" {
		_, _ = w.Write([]byte(`{"status":"` + status + `"}` + "\n"))
		return
	}
	_, _ = w.Write([]byte(`{"status":"` + status + `","reason":` + strconv.Quote(reason) + "}\n"))
}

// stripMethod drops the method part of a pattern ("GET /v1/jobs/{id}").
func stripMethod(p string) string {
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	return p
}

// fallbackRoutes derives routes from paths when no pattern is known, and caps how many
// distinct ones it hands out. Safe for concurrent use.
type fallbackRoutes struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (f *fallbackRoutes) route(path string, status int) string {
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		return RouteUnmatched
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if idLike(s) {
			segs[i] = "{id}"
		}
	}
	rt := "/" + strings.Join(segs, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if !f.seen[rt] {
		if len(f.seen) >= maxFallbackRoutes {
			return RouteOther
		}
		f.seen[rt] = true
	}
	return rt
}

// idLike reports segments that name one thing rather than a route: numbers, and long
// tokens with digits (ULIDs, UUIDs, hashes).
func idLike(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	return s != "" && (digits == len(s) || (len(s) >= 16 && digits > 0))
}

// method keeps the label bounded: anything but the standard methods is OTHER.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status code. It passes Flush (server-sent events) and
// Hijack (WebSockets) through, and Unwrap for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("metrics: the underlying ResponseWriter cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
