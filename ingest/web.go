package ingest

import (
	_ "embed"
	"net/http"
)

// indexHTML is a minimal upload page; the full studio replaces it.
//
//go:embed web/index.html
var indexHTML []byte

func (s *Service) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(indexHTML)
}
