package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/creativeai-studio/studio/schemas"
)

// Limits of an analyst query (SQL): rows returned, seconds and memory the engine may
// spend. The memory bound matters most on the embedded engine, which shares the
// studio's process: a query over it fails instead of taking the process down.
const (
	SQLMaxRows    = 10000
	SQLMaxSeconds = 30
	SQLMaxMemory  = 1 << 30
)

// ErrNotReadOnly is returned by SQL for a statement that is not one read-only query.
// It wraps schemas.ErrBadQuery.
var ErrNotReadOnly = fmt.Errorf("%w: only one read-only query (SELECT, WITH or EXPLAIN) is allowed", schemas.ErrBadQuery)

var (
	sqlLeading = regexp.MustCompile(`(?is)^\s*(select|with|explain)\b`)
	// Clauses that would write outside the database from an in-process engine, or set
	// the session's state for the sink's later statements.
	sqlForbidden = regexp.MustCompile(`(?i)\binto\s+outfile\b|\bsettings\s+[a-z_]+\s*=|\bformat\s+[a-z]`)
)

// CheckReadOnly reports why query may not run as an analyst query: it must be one
// SELECT, WITH … SELECT or EXPLAIN statement (a trailing semicolon is allowed) without
// INTO OUTFILE, FORMAT or SETTINGS clauses. The engine enforces read-only on top
// (readonly, no DDL, bounded time and rows); this check keeps the statement to one the
// limits can be attached to.
func CheckReadOnly(query string) error {
	if len(query) > 64<<10 {
		return fmt.Errorf("%w: the query is longer than 64 KiB", ErrNotReadOnly)
	}
	q, err := blankLiterals(query)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotReadOnly, err)
	}
	q = strings.TrimRight(strings.TrimSpace(q), "; \t\r\n")
	switch {
	case q == "":
		return fmt.Errorf("%w: the query is empty", ErrNotReadOnly)
	case strings.Contains(q, ";"):
		return fmt.Errorf("%w: send one statement at a time (remove the ';')", ErrNotReadOnly)
	case !sqlLeading.MatchString(q):
		return fmt.Errorf("%w: the statement must start with SELECT, WITH or EXPLAIN", ErrNotReadOnly)
	case sqlForbidden.MatchString(q):
		return fmt.Errorf("%w: INTO OUTFILE, FORMAT and SETTINGS clauses are not accepted (the service sets its own)", ErrNotReadOnly)
	}
	return nil
}

// blankLiterals returns q with comments, string literals and quoted identifiers
// replaced by spaces (same length), so the checks see only the statement's own words.
func blankLiterals(q string) (string, error) {
	b := []byte(q)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '-' && i+1 < len(b) && b[i+1] == '-':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			end := strings.Index(string(b[i+2:]), "*/")
			if end < 0 {
				return "", errors.New("a /* comment is not closed")
			}
			for j := i; j < i+2+end+2; j++ {
				b[j] = ' '
			}
			i += 2 + end + 1
		case b[i] == '\'' || b[i] == '"' || b[i] == '`':
			quote, j := b[i], i+1
			for ; j < len(b); j++ {
				if b[j] == '\\' {
					j++
					continue
				}
				if b[j] == quote {
					if j+1 < len(b) && b[j+1] == quote { // a doubled quote inside
						j++
						continue
					}
					break
				}
			}
			if j >= len(b) {
				return "", fmt.Errorf("a %c quote is not closed", quote)
			}
			for k := i + 1; k < j; k++ {
				b[k] = ' '
			}
			i = j
		}
	}
	return string(b), nil
}

// SQL runs one analyst query against the analytics store and returns at most
// SQLMaxRows rows. The statement runs read-only (readonly, allow_ddl = 0, which also
// refuses table functions such as file() or url()), for at most SQLMaxSeconds and
// SQLMaxMemory bytes. On the
// embedded engine it shares the process's chDB session with the sink, whose writes
// wait for it. It returns schemas.ErrAnalyticsOff without an analytics store and an
// error wrapping ErrNotReadOnly for a statement CheckReadOnly refuses.
func SQL(ctx context.Context, cfg Config, query string) (*schemas.SQLResult, error) {
	if !cfg.Enabled() {
		return nil, schemas.ErrAnalyticsOff
	}
	if err := CheckReadOnly(query); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := strings.TrimRight(strings.TrimSpace(query), "; \t\r\n")
	c, err := open(&cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	version, err := serverVersion(ctx, c)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var res *schemas.SQLResult
	switch c := c.(type) {
	case *embeddedConn:
		res, err = c.table(ctx, q)
	case serverConn:
		res, err = c.table(ctx, q)
	default:
		err = fmt.Errorf("sink: no analyst queries on %T", c)
	}
	if err != nil {
		if exceptionCode(err) != 0 { // the engine refused the query itself
			return nil, fmt.Errorf("%w: %v", schemas.ErrBadQuery, err)
		}
		return nil, fmt.Errorf("sink: query: %w", err)
	}
	res.Engine, res.ElapsedMS = version, float64(time.Since(start).Microseconds())/1000
	if len(res.Rows) > SQLMaxRows {
		res.Rows, res.Truncated = res.Rows[:SQLMaxRows], true
	}
	if res.Rows == nil {
		res.Rows = [][]any{}
	}
	return res, nil
}

// sqlSettings are the limits of an analyst query. readonly comes last: once it is set,
// no later setting of the same query may change.
var sqlSettings = []struct {
	name  string
	value any
}{
	{"max_execution_time", SQLMaxSeconds},
	{"max_memory_usage", SQLMaxMemory},
	{"max_result_rows", SQLMaxRows + 1},
	{"result_overflow_mode", "break"},
	{"output_format_json_quote_64bit_integers", 0},
	{"allow_ddl", 0},
	{"readonly", 1},
}

// table runs q on chDB with the limits as a SETTINGS clause and reads the JSONCompact
// answer, whose metadata names the columns and their types.
func (c *embeddedConn) table(ctx context.Context, q string) (*schemas.SQLResult, error) {
	var set []string
	for _, s := range sqlSettings {
		if v, ok := s.value.(string); ok {
			set = append(set, s.name+" = "+quote(v))
		} else {
			set = append(set, fmt.Sprintf("%s = %v", s.name, s.value))
		}
	}
	out, err := c.s.QueryIn(ctx, c.database, q+"\nSETTINGS "+strings.Join(set, ", "), "JSONCompact")
	if err != nil {
		return nil, err
	}
	var raw struct {
		Meta []schemas.SQLColumn `json:"meta"`
		Data [][]any             `json:"data"`
	}
	if len(out) > 0 {
		if err := json.Unmarshal(out, &raw); err != nil {
			return nil, fmt.Errorf("read the engine's answer: %w", err)
		}
	}
	return &schemas.SQLResult{Columns: raw.Meta, Rows: raw.Data}, nil
}

// table runs q on the server with the limits as query settings (readonly = 2: the
// client sends settings in no fixed order, and 2 still refuses every write) and
// converts each value to its JSON form.
func (c serverConn) table(ctx context.Context, q string) (*schemas.SQLResult, error) {
	// Old servers take only numeric query settings over the native protocol, so the row
	// limit is the loop below: it stops reading after SQLMaxRows+1 rows, and closing
	// the rows cancels the rest of the query.
	set := clickhouse.Settings{"max_execution_time": SQLMaxSeconds, "max_memory_usage": SQLMaxMemory, "allow_ddl": 0, "readonly": 2}
	rs, err := c.Conn.Query(clickhouse.Context(ctx, clickhouse.WithSettings(set)), q)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	res := &schemas.SQLResult{}
	types := rs.ColumnTypes()
	for _, ct := range types {
		res.Columns = append(res.Columns, schemas.SQLColumn{Name: ct.Name(), Type: ct.DatabaseTypeName()})
	}
	for rs.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rs.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = jsonValue(reflect.ValueOf(d).Elem().Interface())
		}
		res.Rows = append(res.Rows, row)
		if len(res.Rows) > SQLMaxRows {
			break
		}
	}
	return res, rs.Err()
}

// jsonValue writes times as ClickHouse prints them (UTC) and dereferences Nullable
// values; everything else encodes as encoding/json does.
func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05")
	case nil:
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return jsonValue(rv.Elem().Interface())
	}
	return v
}
