package sink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/creativeai-studio/studio/internal/chdb"
)

// open returns a connection to database (empty: the user's default database): the
// embedded chDB engine when cfg has no address, else a connection pool to the server.
// clickhouse-go dials lazily, so this succeeds while the server is down; the first
// query reports the problem, and later queries dial again.
func open(cfg *Config, database string) (conn, error) {
	if cfg.Embedded() {
		s, err := chdb.Open(cfg.ChDBLibrary, cfg.EmbeddedDir)
		if err != nil {
			return nil, fmt.Errorf("sink: open the embedded analytics engine: %w", err)
		}
		return &embeddedConn{s: s, database: database}, nil
	}
	opts := &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     cfg.addrs(),
		Auth:     clickhouse.Auth{Database: database, Username: cfg.User, Password: cfg.Password},
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "studio-sink", Version: "1"},
		}},
		DialTimeout:      cfg.DialTimeout,
		ReadTimeout:      cfg.QueryTimeout,
		MaxOpenConns:     8,
		MaxIdleConns:     4,
		Compression:      compression(cfg.addrs()),
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	}
	if cfg.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("sink: configure ClickHouse client for %s: %w", cfg.Addr, err)
	}
	return serverConn{c}, nil
}

// compression is LZ4 for a server across the network, and none for one on this host:
// over loopback, compressing each block (and the server decompressing it) costs CPU
// for nothing, about a tenth of the sink process's CPU per row in
// BenchmarkSinkThroughput.
func compression(addrs []string) *clickhouse.Compression {
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
		}
	}
	return &clickhouse.Compression{Method: clickhouse.CompressionNone}
}

// exceptionCode returns the ClickHouse error code in err, or 0 when err did not come
// from the engine (a network error, a timeout).
func exceptionCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	var ce *chdb.Error
	if errors.As(err, &ce) {
		if m := codeRE.FindStringSubmatch(ce.Message); m != nil {
			n, _ := strconv.Atoi(m[1])
			return int32(n)
		}
	}
	return 0
}

var codeRE = regexp.MustCompile(`Code: (\d+)\.`)

// ClickHouse error codes the sink reacts to.
const (
	codeUnknownDatabase = 81
	codeUnknownTable    = 60
)
