package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// SetAfterCommit installs fn to run after each committed batch and before its messages
// are acknowledged, so tests can crash the sink exactly there.
func SetAfterCommit(s *Sink, fn func(stream string)) { s.afterCommit = fn }

// SplitStatements exposes the migration splitter.
var SplitStatements = splitStatements

// MigrateTo applies the migrations up to version only, to test upgrades.
func MigrateTo(ctx context.Context, cfg Config, version int) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := openDatabase(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return migrateConn(ctx, &cfg, conn, version)
}

// ColumnExists exposes the ADD COLUMN guard of migrations on a server connection.
func ColumnExists(ctx context.Context, c driver.Conn, stmt string) (bool, error) {
	return columnExists(ctx, serverConn{c}, stmt)
}

// Insert writes rows into table of cfg's database, on either engine.
func Insert(ctx context.Context, cfg Config, table string, columns []string, rows [][]any) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c, err := open(&cfg, cfg.Database)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Insert(ctx, table, columns, rows)
}

// Exec runs a statement in cfg's database (empty Database: the default one).
func Exec(ctx context.Context, cfg Config, query string, args ...any) error {
	c, err := open(&cfg, cfg.Database)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Exec(ctx, query, args...)
}

// QueryEmbedded reads every row of query on the embedded engine, typed by the result's
// metadata: numbers as float64, times as UTC time.Time, strings, arrays as []any.
func QueryEmbedded(ctx context.Context, cfg Config, query string) ([][]any, error) {
	c, err := open(&cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	e := c.(*embeddedConn)
	out, err := e.s.QueryIn(ctx, e.database, query, "JSONCompact")
	if err != nil {
		return nil, err
	}
	var res struct {
		Meta []struct{ Name, Type string }
		Data [][]json.RawMessage
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, err
	}
	var rowsOut [][]any
	for _, r := range res.Data {
		row := make([]any, len(r))
		for i, raw := range r {
			v, err := typed(res.Meta[i].Type, raw)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", res.Meta[i].Name, err)
			}
			row[i] = v
		}
		rowsOut = append(rowsOut, row)
	}
	return rowsOut, nil
}

func typed(typ string, raw json.RawMessage) (any, error) {
	typ = strings.TrimSuffix(strings.TrimPrefix(typ, "LowCardinality("), ")")
	switch {
	case strings.HasPrefix(typ, "Array("):
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, err
		}
		out := make([]any, len(elems))
		for i, e := range elems {
			v, err := typed(typ[len("Array("):len(typ)-1], e)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case strings.HasPrefix(typ, "String"):
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case strings.HasPrefix(typ, "Date"):
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return parseTime(s)
	}
	r := &jsonRows{cur: []json.RawMessage{raw}}
	var f float64
	err := r.Scan(&f)
	return f, err
}

// Decode turns one message of stream into the names of the tables its rows go to.
func Decode(stream, subject string, data []byte) ([]string, error) {
	for i := range sinkStreams {
		if sinkStreams[i].stream != stream {
			continue
		}
		d, err := sinkStreams[i].decode(subject, data)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range d.blocks {
			for range b.rows() {
				names = append(names, b.t.name)
			}
		}
		return names, nil
	}
	return nil, fmt.Errorf("no stream %s", stream)
}

// ErrMalformed is the error malformed messages wrap.
var ErrMalformed = errMalformed

// Stored returns which of keys the column col of table in cfg's database holds.
func Stored(ctx context.Context, cfg Config, table, col string, keys []string) (map[string]bool, error) {
	c, err := open(&cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Stored(ctx, table, col, keys, "")
}
