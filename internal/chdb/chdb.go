// Package chdb runs chDB, the in-process ClickHouse, from its shared library
// libchdb.so (internal/assets.ChDB), loaded at run time without cgo.
//
// It binds the library's connection API (chdb_connect, chdb_query, ...) itself, through
// purego as github.com/chdb-io/chdb-go does, rather than importing chdb-go: chdb-go
// loads the library in a package init and panics when it is missing, which would stop
// every studio command on a machine without the 566 MB library. Here the library is
// opened on the first Open, from a path the caller resolved through the asset cache.
//
// chDB keeps one engine per process with one data path: Open hands out the same Session
// for the same path, refuses a second path while a Session is open, and Close releases
// the engine when the last user closes it.
package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The library's functions, bound once by load.
var (
	loadOnce sync.Once
	loadErr  error
	loaded   string

	chdbConnect            func(argc int, argv []*byte) *connHandle
	chdbCloseConn          func(conn *connHandle)
	chdbQuery              func(conn unsafe.Pointer, query string, format string) unsafe.Pointer
	chdbDestroyQueryResult func(res unsafe.Pointer)
	chdbResultBuffer       func(res unsafe.Pointer) unsafe.Pointer
	chdbResultLen          func(res unsafe.Pointer) uintptr
	chdbResultError        func(res unsafe.Pointer) string
)

// connHandle mirrors struct chdb_connection_ { void *internal_data; }.
type connHandle struct{ internal unsafe.Pointer }

// load opens the library at path once per process; a later call with another path fails.
func load(path string) error {
	loadOnce.Do(func() {
		lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("chdb: load %s: %w; fetch it with `studio fetch analytics`", path, err)
			return
		}
		loaded = path
		purego.RegisterLibFunc(&chdbConnect, lib, "chdb_connect")
		purego.RegisterLibFunc(&chdbCloseConn, lib, "chdb_close_conn")
		purego.RegisterLibFunc(&chdbQuery, lib, "chdb_query")
		purego.RegisterLibFunc(&chdbDestroyQueryResult, lib, "chdb_destroy_query_result")
		purego.RegisterLibFunc(&chdbResultBuffer, lib, "chdb_result_buffer")
		purego.RegisterLibFunc(&chdbResultLen, lib, "chdb_result_length")
		purego.RegisterLibFunc(&chdbResultError, lib, "chdb_result_error")
	})
	if loadErr != nil {
		return loadErr
	}
	if loaded != path {
		return fmt.Errorf("chdb: library %s already loaded; one per process", loaded)
	}
	return nil
}

// Session is the process's chDB engine on one data directory. It is safe for
// concurrent use; queries run one at a time (the engine's connection is not shared
// between threads) and each blocks until it completes.
type Session struct {
	path string

	mu   sync.Mutex // serializes queries; guards conn and refs
	conn *connHandle
	refs int
}

var (
	openMu  sync.Mutex
	current *Session
)

// ErrOtherPath is returned by Open while a Session on another data directory is open.
var ErrOtherPath = errors.New("chdb: one data directory per process")

// Open returns the Session on dataDir (created if missing), loading the library at
// libPath on first use. Every Open must be matched by a Close.
func Open(libPath, dataDir string) (*Session, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("chdb: data directory %s: %w", dataDir, err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if current != nil {
		if current.path != abs {
			return nil, fmt.Errorf("%w: %s is open, %s was asked for", ErrOtherPath, current.path, abs)
		}
		current.mu.Lock()
		current.refs++
		current.mu.Unlock()
		return current, nil
	}
	if err := load(libPath); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("chdb: create data directory: %w", err)
	}
	args := []string{"clickhouse", "--path=" + abs}
	argv := make([]*byte, len(args))
	for i, a := range args {
		b := append([]byte(a), 0)
		argv[i] = &b[0]
	}
	h := chdbConnect(len(argv), argv)
	if h == nil || h.internal == nil {
		return nil, fmt.Errorf("chdb: open engine on %s failed (is another process using it?)", abs)
	}
	current = &Session{path: abs, conn: h, refs: 1}
	return current, nil
}

// Path returns the session's data directory.
func (s *Session) Path() string { return s.path }

// Query runs one statement and returns its output in format (a ClickHouse output
// format such as "JSONCompact" or "TabSeparated"). The engine cannot be interrupted:
// ctx is checked before the statement starts, so keep statements bounded.
func (s *Session) Query(ctx context.Context, query, format string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.query(ctx, query, format)
}

func (s *Session) query(ctx context.Context, query, format string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.conn == nil {
		return nil, errors.New("chdb: session closed")
	}
	res := chdbQuery(s.conn.internal, query, format)
	if res == nil {
		return nil, nil
	}
	defer chdbDestroyQueryResult(res)
	if msg := chdbResultError(res); msg != "" {
		return nil, &Error{Message: msg}
	}
	n := chdbResultLen(res)
	buf := chdbResultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...), nil
}

// QueryIn runs query as Query does, with database as the current database (empty: the
// engine's default). The database and the statement are one step: no other query of
// the process runs between them.
func (s *Session) QueryIn(ctx context.Context, database, query, format string) ([]byte, error) {
	if database == "" {
		database = "default"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.query(ctx, "USE "+database, "TabSeparated"); err != nil {
		return nil, err
	}
	return s.query(ctx, query, format)
}

// Exec runs a statement whose output is not wanted (DDL, INSERT).
func (s *Session) Exec(ctx context.Context, query string) error {
	_, err := s.Query(ctx, query, "TabSeparated")
	return err
}

// Close releases this user's hold; the last Close shuts the engine down. The library
// stays loaded, and a later Open may use another data directory.
func (s *Session) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return nil
	}
	s.refs--
	if s.refs > 0 {
		return nil
	}
	chdbCloseConn(s.conn)
	s.conn = nil
	if current == s {
		current = nil
	}
	return nil
}

// Error is an exception raised by the engine, such as a syntax error or an unknown table.
type Error struct {
	// Message is the engine's text, "Code: N. DB::Exception: ...".
	Message string
}

func (e *Error) Error() string { return "chdb: " + e.Message }
