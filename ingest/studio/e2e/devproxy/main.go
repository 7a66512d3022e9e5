// Command devproxy serves the studio pages (studio.Handler) in front of a running
// `studio up` and passes every other request (the API, /metrics, WebSockets) through to
// it. scripts/browser-test.sh uses it while the API does not mount the pages itself; it
// ensures the chart library in the asset cache first, as `studio up` will.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/creativeai-studio/studio/ingest/studio"
	"github.com/creativeai-studio/studio/internal/assets"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	apiURL := flag.String("api", "", "URL of the running API (studio up), e.g. http://127.0.0.1:8080")
	cacheDir := flag.String("cache-dir", assets.DefaultDir(), "asset cache")
	addrFile := flag.String("url-file", "", "write the URL to open into this file once listening")
	flag.Parse()
	if *apiURL == "" {
		return errors.New("-api is required")
	}
	upstream, err := url.Parse(*apiURL)
	if err != nil {
		return fmt.Errorf("-api: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fetchCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := (&assets.Cache{Dir: *cacheDir}).EnsureAll(fetchCtx, assets.Web...); err != nil {
		return err
	}

	ui := studio.Handler(studio.Config{CacheDir: *cacheDir})
	mux := http.NewServeMux()
	for _, p := range studio.Routes {
		mux.Handle(p, ui)
	}
	// ReverseProxy passes WebSocket upgrades through; FlushInterval -1 streams SSE.
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.FlushInterval = -1
	mux.Handle("/", proxy)

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	u := "http://" + l.Addr().String()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(u+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Println("devproxy: studio pages at", u, "in front of", upstream)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
