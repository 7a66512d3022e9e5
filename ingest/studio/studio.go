// Package studio serves the web studio at / and the operations dashboard at /ops:
// plain HTML, CSS and JavaScript embedded in the binary (no build step), the chart
// library and an example photo from the asset cache, and the dashboard's analytics
// endpoint. The pages talk only to the public HTTP API (/v1/...), the Prometheus
// endpoint (/metrics) and /ops/api/business, so they work against any ingest that
// serves those, and nothing on them is reached from outside the server at run time.
package studio

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/schemas"
)

// DefaultMaxUploadBytes is the upload limit shown when Config leaves it unset; it
// matches the API's default (--max-upload-bytes).
const DefaultMaxUploadBytes = 10 << 20

// Routes are the ServeMux patterns Handler answers. Mount Handler on each of them in
// the API's mux; the API's own routes stay more specific than these.
var Routes = []string{"GET /{$}", "GET /ops", "GET /ops/", "POST /ops/api/sql", "GET /static/"}

// Config says what the pages show and where their run-time files come from.
type Config struct {
	// CacheDir is the asset cache (assets.Cache.Dir): the chart library (assets.Web)
	// and the example photo are served from it. Empty means assets.DefaultDir().
	CacheDir string
	// MaxUploadBytes is the upload limit shown before a file is sent and checked in the
	// page; 0 means DefaultMaxUploadBytes. Set it to the API's limit.
	MaxUploadBytes int64
	// AuthRequired makes the studio ask for a token before its first call. Without it
	// the page still shows the sign-in box whenever the API answers 401.
	AuthRequired bool
	// Business answers GET /ops/api/business; nil answers 503 and the dashboard says
	// that analytics are not configured. Each window's report is kept BusinessTTL, so
	// Business runs at most once per window per BusinessTTL. The route itself is not
	// authenticated here: the API that mounts the pages must require an operator
	// credential for /ops/api/ (ingest does).
	Business BusinessFunc
	// BusinessTTL is how long a window's report is served from memory; 0 means the
	// default (BusinessTTL), negative queries on every call.
	BusinessTTL time.Duration
	// SQL answers POST /ops/api/sql (the dashboard's SQL box and `studio sql`); nil
	// answers 503. Like Business, the route needs an operator credential from the API
	// (and its per-caller rate limit). A statement's result is kept SQLTTL.
	SQL SQLFunc
	// SQLTTL is how long an analyst query's result is served from memory; 0 means the
	// default (SQLTTL), negative queries on every call.
	SQLTTL time.Duration
	// Cookbook is what GET /ops/api/sql/cookbook lists (sink.Cookbook).
	Cookbook []schemas.SQLQuery
	// Caches, when set, lets the caller drop the kept business reports and SQL results
	// and hold them off (erasure: see Caches).
	Caches *Caches
	// Log receives analytics failures; nil discards them.
	Log logrus.FieldLogger
}

//go:embed web
var webFS embed.FS

// file is an embedded page or script with its validator.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// handler serves the pages. Its only mutable state is the business report and SQL
// result caches, which lock themselves: safe for concurrent use.
type handler struct {
	cfg   Config
	files map[string]file // by name under web/
	biz   *businessCache  // nil when Config.Business is nil
	sqlc  *sqlCache       // nil when Config.SQL is nil
}

// Handler returns the studio, the dashboard and their static files (see Routes).
func Handler(cfg Config) http.Handler {
	if cfg.CacheDir == "" {
		cfg.CacheDir = assets.DefaultDir()
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	h := &handler{cfg: cfg, files: loadFiles()}
	if cfg.Business != nil {
		ttl := cfg.BusinessTTL
		if ttl == 0 {
			ttl = BusinessTTL
		}
		h.biz = newBusinessCache(cfg.Business, ttl, cfg.Caches)
	}
	if cfg.SQL != nil {
		ttl := cfg.SQLTTL
		if ttl == 0 {
			ttl = SQLTTL
		}
		h.sqlc = newSQLCache(cfg.SQL, ttl, cfg.Caches)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page("index.html"))
	mux.HandleFunc("GET /ops", h.page("ops.html"))
	mux.HandleFunc("GET /ops/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ops", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /ops/api/business", h.business)
	mux.HandleFunc("POST /ops/api/sql", h.sql)
	mux.HandleFunc("GET /ops/api/sql/cookbook", h.cookbook)
	mux.HandleFunc("GET /static/config.json", h.config)
	mux.HandleFunc("GET /static/example.png", h.example)
	mux.HandleFunc("GET /static/app/{name}", h.app)
	mux.HandleFunc("GET /static/vendor/{name}", h.vendor)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "not_found", "no such page or file: "+r.URL.Path)
	})
	return securityHeaders(mux)
}

func loadFiles() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(webFS, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := webFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "web/")] = file{body: body, ctype: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("studio: embedded files unreadable: " + err.Error()) // a build defect, not a run-time condition
	}
	return out
}

// securityHeaders keeps the pages to their own origin: scripts, styles, images and
// connections (fetch, WebSocket) go only to this server; blob: images are results
// fetched with the token. Nothing may frame the pages.
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// page serves an HTML page. Pages revalidate on every load (no-cache plus an ETag), so
// a new binary's pages and scripts are picked up at once.
func (h *handler) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.serveEmbedded(w, r, name)
	}
}

func (h *handler) app(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if strings.HasSuffix(name, ".html") {
		name = "" // pages have their own routes
	}
	h.serveEmbedded(w, r, name)
}

func (h *handler) serveEmbedded(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := h.files[name]
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not_found", "no such file: "+r.URL.Path)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// vendorFiles maps the URLs under /static/vendor/ to cached assets.
var vendorFiles = map[string]struct {
	asset assets.Asset
	ctype string
}{
	"uplot.min.js":      {assets.UPlotJS, "text/javascript; charset=utf-8"},
	"uplot.min.css":     {assets.UPlotCSS, "text/css; charset=utf-8"},
	"uplot.LICENSE.txt": {assets.UPlotLicense, "text/plain; charset=utf-8"},
}

func (h *handler) vendor(w http.ResponseWriter, r *http.Request) {
	v, ok := vendorFiles[r.PathValue("name")]
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not_found", "no such file: "+r.URL.Path)
		return
	}
	h.serveCached(w, r, v.asset, v.ctype, "the chart library is not in the asset cache ("+h.cfg.CacheDir+"): run `studio fetch web`, or restart `studio up`, which fetches it")
}

// exampleCandidates are the cached test photos the example may be, in order of choice.
var exampleCandidates = []assets.Asset{assets.PhotoAstronaut, assets.PhotoCoffee, assets.PhotoChelsea}

func (h *handler) example(w http.ResponseWriter, r *http.Request) {
	for _, a := range exampleCandidates {
		if h.cached(a) {
			w.Header().Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": path.Base(a.Path)}))
			h.serveCached(w, r, a, "image/png", "")
			return
		}
	}
	writeProblem(w, r, http.StatusNotFound, "no_example", "no example photo in the asset cache ("+h.cfg.CacheDir+"): run `studio fetch photos`")
}

// cached reports whether a's file is in the cache with its pinned size. Ensure checked
// its digest when it put it there; a size check here catches a truncated or swapped file
// without hashing it on every request.
func (h *handler) cached(a assets.Asset) bool {
	st, err := os.Stat(filepath.Join(h.cfg.CacheDir, filepath.FromSlash(a.Path)))
	return err == nil && st.Mode().IsRegular() && st.Size() == a.Size
}

func (h *handler) serveCached(w http.ResponseWriter, r *http.Request, a assets.Asset, ctype, missing string) {
	if !h.cached(a) {
		writeProblem(w, r, http.StatusNotFound, "asset_missing", missing)
		return
	}
	f, err := os.Open(filepath.Join(h.cfg.CacheDir, filepath.FromSlash(a.Path)))
	if err != nil {
		writeProblem(w, r, http.StatusNotFound, "asset_missing", missing)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", ctype)
	// The digest is pinned, so it is a strong validator; a day's freshness bounds how
	// long a browser keeps an old version after the pin changes.
	w.Header().Set("ETag", `"`+a.SHA256+`"`)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// PageConfig is GET /static/config.json: what the pages need to know before their first
// API call.
type PageConfig struct {
	MaxUploadBytes int64    `json:"max_upload_bytes"`
	AcceptedTypes  []string `json:"accepted_types"`
	AuthRequired   bool     `json:"auth_required"`
	// Example is true when GET /static/example.png serves a photo.
	Example bool `json:"example"`
	// Charts is true when the chart library is in the cache.
	Charts bool `json:"charts"`
	// Analytics is true when /ops/api/business is backed by a query function.
	Analytics bool `json:"analytics"`
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	pc := PageConfig{
		MaxUploadBytes: h.cfg.MaxUploadBytes,
		// The API recognises these by content; the list is what the page tells people.
		AcceptedTypes: []string{"image/jpeg", "image/png", "image/webp"},
		AuthRequired:  h.cfg.AuthRequired,
		Charts:        h.cached(assets.UPlotJS) && h.cached(assets.UPlotCSS),
		Analytics:     h.cfg.Business != nil,
	}
	for _, a := range exampleCandidates {
		pc.Example = pc.Example || h.cached(a)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, pc)
}

// problem is an RFC 9457 problem details body, the shape of every API error.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "/docs/problems#" + code, Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
