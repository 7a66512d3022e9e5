package sink

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// open returns a connection pool for database (empty: the user's default database).
// clickhouse-go dials lazily, so this succeeds while the server is down; the first
// query reports the problem, and later queries dial again.
func open(cfg *Config, database string) (driver.Conn, error) {
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
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	}
	if cfg.TLS {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("sink: configure ClickHouse client for %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

// exceptionCode returns the ClickHouse server error code in err, or 0 when err did not
// come from the server (a network error, a timeout).
func exceptionCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// ClickHouse error codes the sink reacts to.
const (
	codeUnknownDatabase = 81
	codeUnknownTable    = 60
)
