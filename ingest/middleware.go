package ingest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/metrics"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	exchangeKey
)

// exchange gives huma handlers the raw request and writer for what huma does not model:
// streamed multipart bodies, WebSocket upgrades, SSE.
type exchange struct {
	w http.ResponseWriter
	r *http.Request
}

func exchangeFrom(ctx context.Context) (http.ResponseWriter, *http.Request) {
	x, _ := ctx.Value(exchangeKey).(*exchange)
	if x == nil {
		return nil, nil
	}
	return x.w, x.r
}

// RequestIDFrom returns the request id the middleware attached to ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// newRequestID returns 32 lower-case hex digits: the shape of a W3C trace id, so a
// generated request id can be the trace id of the job it creates.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// acceptRequestID keeps a caller's X-Request-ID when it is short printable ASCII.
func acceptRequestID(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// traceIDFor maps a request id onto a W3C trace id: a 32-hex id (ours) or a UUID is
// used as it is, anything else through sha256, so logs, events and the caller's own
// records all share one id.
func traceIDFor(requestID string) string {
	id := strings.ToLower(strings.ReplaceAll(requestID, "-", ""))
	if len(id) == 32 && strings.Trim(id, "0") != "" {
		if _, err := hex.DecodeString(id); err == nil {
			return id
		}
	}
	sum := sha256.Sum256([]byte(requestID))
	return hex.EncodeToString(sum[:16])
}

// traceparentFor starts a trace whose id is derived from the request id.
func traceparentFor(requestID string) string {
	var span [8]byte
	_, _ = rand.Read(span[:])
	return "00-" + traceIDFor(requestID) + "-" + hex.EncodeToString(span[:]) + "-01"
}

// responseWriter records the status and stamps the processing time on the headers just
// before they go out. It passes Flush and Hijack through (SSE and WebSockets).
type responseWriter struct {
	http.ResponseWriter
	start       time.Time
	status      int
	wroteHeader bool
	bytes       int64
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		w.status = code
		ms := strconv.FormatFloat(float64(time.Since(w.start).Microseconds())/1000, 'f', 3, 64)
		w.Header().Set("X-Processing-Time", ms+"ms")
		w.Header().Set("Server-Timing", "app;dur="+ms)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("ingest: the connection cannot be hijacked")
	}
	if !w.wroteHeader {
		w.wroteHeader, w.status = true, http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// exposedHeaders are the response headers browsers may read cross-origin.
var exposedHeaders = strings.Join([]string{
	"Location", HeaderRequestID, "X-Processing-Time", "Server-Timing", "Deprecation", "Sunset", "Link",
	"Idempotent-Replayed", "Studio-Api-Version",
}, ", ")

// middleware wraps the API: request id, processing time, CORS, panic recovery and the
// access log, outermost first, then authentication as routes declares it (nil: every
// route needs a credential).
func (s *Service) middleware(next http.Handler, routes *routeTable) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{ResponseWriter: w, start: time.Now(), status: http.StatusOK}
		id := r.Header.Get(HeaderRequestID)
		if !acceptRequestID(id) {
			id = newRequestID()
		}
		rw.Header().Set(HeaderRequestID, id)
		x := &exchange{w: rw}
		r = r.WithContext(context.WithValue(context.WithValue(r.Context(), requestIDKey, id), exchangeKey, x))
		x.r = r

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // the server's own signal to drop the connection
				}
				s.log.WithFields(logrus.Fields{"panic": fmt.Sprint(p), "stack": string(debug.Stack()), "request_id": id}).Error("handler panicked")
				if !rw.wroteHeader {
					writeProblem(rw, r, problem(http.StatusInternalServerError, "internal", "unexpected error; the request id is in the X-Request-ID header"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = r.URL.Path
			}
			s.log.WithFields(logrus.Fields{
				"endpoint": route, "path": r.URL.Path, "method": r.Method, "status_code": rw.status,
				"latency_ms": float64(time.Since(rw.start).Microseconds()) / 1000, "request_id": id,
				"trace_id": traceIDFor(id), "response_bytes": rw.bytes,
			}).Info("http request")
		}()

		if s.cors(rw, r) {
			return // a preflight, answered
		}
		if s.sec != nil {
			ar := s.authenticate(rw, r, routes)
			if ar == nil {
				return // refused, answered
			}
			r, x.r = ar, ar
		}
		next.ServeHTTP(rw, r)
		// The mux routed this copy of the request; an outer metrics wrapper reads the
		// pattern from here.
		metrics.ReportRoute(r)
	})
}

// cors applies Config.CORSOrigins and answers preflight requests; it reports whether
// the request was a preflight.
func (s *Service) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	anyOrigin := slices.Contains(s.cfg.CORSOrigins, "*")
	if !anyOrigin && !slices.Contains(s.cfg.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", exposedHeaders)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Idempotency-Key, X-Request-ID, traceparent, Accept")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}
