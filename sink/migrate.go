package sink

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one numbered schema change, embedded from migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	// Statements are the file's statements without comments, in order.
	Statements []string
	// Checksum is the sha256 of the file; an applied migration must never change.
	Checksum string
	// Requires is the oldest ClickHouse version (major, minor) the migration runs on,
	// from a "-- requires ClickHouse 21.8" line; zero: every version the sink supports
	// (18.16 on). On an older server the migration is neither applied nor required, and
	// a later migrate applies it once the server is upgraded.
	Requires [2]int
}

// RunsOn reports whether the migration applies to a server whose version() is version.
func (m Migration) RunsOn(version string) bool {
	v := parseVersion(version)
	return v[0] > m.Requires[0] || v[0] == m.Requires[0] && v[1] >= m.Requires[1]
}

var requiresLine = regexp.MustCompile(`(?m)^--\s*requires ClickHouse (\d+)\.(\d+)\s*$`)

// parseVersion reads the major and minor of a version() such as "26.7.3.1".
func parseVersion(v string) [2]int {
	var out [2]int
	parts := strings.SplitN(v, ".", 3)
	for i := 0; i < 2 && i < len(parts); i++ {
		out[i], _ = strconv.Atoi(parts[i])
	}
	return out
}

// serverVersion returns the engine's version().
func serverVersion(ctx context.Context, c conn) (string, error) {
	var v string
	if err := queryRow(ctx, c, "SELECT version()", nil, &v); err != nil {
		return "", fmt.Errorf("sink: read the ClickHouse version: %w", err)
	}
	return v, nil
}

// ErrSchemaOutdated is returned by Run when Config.Migrate is false and the database
// lacks migrations this binary needs.
var ErrSchemaOutdated = errors.New("sink: the ClickHouse schema is older than this binary")

// ErrMigrationChanged is returned when an applied migration's file differs from the
// one recorded in schema_migrations.
var ErrMigrationChanged = errors.New("sink: an applied migration was changed")

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("sink: migration file %q is not named NNNN_name.sql", e.Name())
		}
		data, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(data)
		stmts, err := splitStatements(string(data))
		if err != nil {
			return nil, fmt.Errorf("sink: migration %s: %w", e.Name(), err)
		}
		mig := Migration{Version: v, Name: e.Name(), Statements: stmts, Checksum: hex.EncodeToString(sum[:])}
		if r := requiresLine.FindStringSubmatch(string(data)); r != nil {
			mig.Requires[0], _ = strconv.Atoi(r[1])
			mig.Requires[1], _ = strconv.Atoi(r[2])
		}
		out = append(out, mig)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("sink: migrations %s and %s share a version", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// splitStatements drops "--" comments and splits at semicolons outside quotes.
func splitStatements(sql string) ([]string, error) {
	var stmts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(sql); i++ {
		ch := sql[i]
		switch {
		case quote != 0:
			cur.WriteByte(ch)
			if ch == '\\' && i+1 < len(sql) {
				i++
				cur.WriteByte(sql[i])
			} else if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"' || ch == '`':
			quote = ch
			cur.WriteByte(ch)
		case ch == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case ch == ';':
			if s := strings.TrimSpace(cur.String()); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts, nil
}

// Migrate creates the database if needed and applies the migrations it lacks, in order,
// recording each in schema_migrations. It is safe to rerun and to run from several
// processes at once: every statement is idempotent (CREATE … IF NOT EXISTS, and an
// ALTER TABLE … ADD COLUMN is skipped when the column exists, since 18.16 has no
// ADD COLUMN IF NOT EXISTS). It returns the names of the migrations it applied.
func Migrate(ctx context.Context, cfg Config) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := openDatabase(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return migrateConn(ctx, &cfg, conn, 0)
}

// openDatabase creates the database if needed and returns a connection to it.
func openDatabase(ctx context.Context, cfg *Config) (conn, error) {
	root, err := open(cfg, "")
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Look first: a user who may write the database need not be allowed to create one.
	var n uint64
	err = queryRow(ctx, root, "SELECT count() FROM system.databases WHERE name = ?", []any{cfg.Database}, &n)
	if err == nil && n == 0 {
		err = root.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	}
	if err != nil {
		return nil, fmt.Errorf("sink: create database %s on %s: %w (is ClickHouse up, and may user %q create databases?)", cfg.Database, cfg.Addr, err, cfg.User)
	}
	return open(cfg, cfg.Database)
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY version`

// migrateConn applies migrations up to target (0: all) on conn.
func migrateConn(ctx context.Context, cfg *Config, conn conn, target int) ([]string, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	if err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("sink: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, m := range all {
		if target > 0 && m.Version > target {
			break
		}
		if !m.RunsOn(version) {
			if _, ok := applied[m.Version]; !ok {
				cfg.Log.WithField("migration", m.Name).WithField("server", version).
					Infof("ClickHouse migration skipped: it needs ClickHouse %d.%d or later", m.Requires[0], m.Requires[1])
			}
			continue
		}
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return done, fmt.Errorf("%w: %s differs from the version applied to %s (add a new migration instead of editing an applied one)", ErrMigrationChanged, m.Name, cfg.Database)
			}
			continue
		}
		for i, stmt := range m.Statements {
			if skip, err := columnExists(ctx, conn, stmt); err != nil {
				return done, err
			} else if skip {
				continue
			}
			if err := conn.Exec(ctx, stmt); err != nil {
				return done, fmt.Errorf("sink: migration %s, statement %d: %w", m.Name, i+1, err)
			}
		}
		if err := conn.Insert(ctx, "schema_migrations", []string{"version", "name", "checksum", "applied_at"},
			[][]any{{uint32(m.Version), m.Name, m.Checksum, time.Now().UTC()}}); err != nil {
			return done, fmt.Errorf("sink: record migration %s: %w", m.Name, err)
		}
		cfg.Log.WithField("migration", m.Name).Info("ClickHouse migration applied")
		done = append(done, m.Name)
	}
	return done, nil
}

// appliedMigrations maps each recorded version to its checksum.
func appliedMigrations(ctx context.Context, conn conn) (map[int]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, any(checksum) FROM schema_migrations GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("sink: read schema_migrations: %w", err)
	}
	out := map[int]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sink: read schema_migrations: %w", err)
		}
		out[int(v)] = sum
	}
	return out, closeRows(rows)
}

// schemaCurrent reports whether every embedded migration is applied.
func schemaCurrent(ctx context.Context, conn conn) (missing []string, err error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	applied, err := appliedMigrations(ctx, conn)
	if exceptionCode(err) == codeUnknownTable {
		applied, err = map[int]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok && m.RunsOn(version) {
			missing = append(missing, m.Name)
		}
	}
	return missing, nil
}

var addColumn = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z0-9_.]+)\s+ADD\s+COLUMN\s+([A-Za-z0-9_]+)\s`)

// columnExists reports whether stmt is an ALTER TABLE … ADD COLUMN whose column is
// already there, which makes a half-applied migration safe to rerun.
func columnExists(ctx context.Context, conn conn, stmt string) (bool, error) {
	m := addColumn.FindStringSubmatch(stmt)
	if m == nil {
		return false, nil
	}
	table := m[1]
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		table = table[i+1:]
	}
	var n uint64
	if err := queryRow(ctx, conn, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?", []any{table, m[2]}, &n); err != nil {
		return false, fmt.Errorf("sink: check column %s.%s: %w", table, m[2], err)
	}
	return n > 0, nil
}
