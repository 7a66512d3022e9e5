package sink

import (
	"context"
	"fmt"
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

// ColumnExists exposes the ADD COLUMN guard of migrations.
var ColumnExists = columnExists

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
		for _, r := range d.rows {
			names = append(names, r.table.name)
		}
		return names, nil
	}
	return nil, fmt.Errorf("no stream %s", stream)
}

// ErrMalformed is the error malformed messages wrap.
var ErrMalformed = errMalformed
