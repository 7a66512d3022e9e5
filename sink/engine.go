package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/creativeai-studio/studio/internal/chdb"
)

// conn is a ClickHouse engine as the sink uses it: a server through clickhouse-go
// (serverConn) or chDB, the in-process engine (embeddedConn). Arguments bind to the
// query's ? placeholders client-side on both. Implementations are safe for concurrent
// use; every call blocks until the engine answers.
type conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Query(ctx context.Context, query string, args ...any) (rows, error)
	// Insert writes rows (values in columns' order) into table in one INSERT. A value
	// that does not fit its column fails the whole insert with a *badRowError.
	Insert(ctx context.Context, table string, columns []string, rows [][]any) error
	// InsertColumns writes n rows given column by column (cols[j] is a []string,
	// []time.Time, []float64, []uint8, []uint16, []uint32, []uint64 or []int8 of n
	// values, columns' order) into table in one INSERT. A value that does not fit its
	// column fails the whole insert with a *badRowError.
	InsertColumns(ctx context.Context, table string, columns []string, cols []any, n int) error
	// Stored returns which of keys the column col of table holds among the rows that
	// also meet within (a condition on the sorting key's leading time column, so the
	// lookup reads only the matching parts; empty: every row).
	Stored(ctx context.Context, table, col string, keys []string, within string) (map[string]bool, error)
	Close() error
}

// rows is the result of a query, read like database/sql's Rows.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// badRowError blames row Row of an Insert.
type badRowError struct {
	Row int
	Err error
}

func (e *badRowError) Error() string { return e.Err.Error() }
func (e *badRowError) Unwrap() error { return e.Err }

// queryRow runs a query that returns one row and scans it into dest.
func queryRow(ctx context.Context, c conn, query string, args []any, dest ...any) error {
	rs, err := c.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	if !rs.Next() {
		err := rs.Err()
		rs.Close()
		if err == nil {
			err = errors.New("sink: query returned no row")
		}
		return err
	}
	if err := rs.Scan(dest...); err != nil {
		rs.Close()
		return err
	}
	return closeRows(rs)
}

// closeRows closes rows and returns the error that ended them, if any.
func closeRows(rs rows) error {
	err := rs.Err()
	if cerr := rs.Close(); err == nil {
		err = cerr
	}
	return err
}

// serverConn is a ClickHouse server reached over the native protocol.
type serverConn struct{ driver.Conn }

func (c serverConn) Query(ctx context.Context, query string, args ...any) (rows, error) {
	return c.Conn.Query(ctx, query, args...)
}

func (c serverConn) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	b, err := c.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(columns, ", ")+")")
	if err != nil {
		return err
	}
	for i, vals := range rows {
		if err := b.Append(vals...); err != nil {
			_ = b.Abort()
			return &badRowError{Row: i, Err: err}
		}
	}
	return b.Send()
}

// InsertColumns appends each column whole. Should a column not take its values (a
// client or schema that converts differently), the rows are inserted one by one
// instead, which names the row at fault.
func (c serverConn) InsertColumns(ctx context.Context, table string, columns []string, cols []any, n int) error {
	b, err := c.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(columns, ", ")+")")
	if err != nil {
		return err
	}
	for j, col := range cols {
		if err := b.Column(j).Append(col); err != nil {
			_ = b.Abort()
			rows := make([][]any, n)
			for i := range rows {
				rows[i] = rowValues(cols, i)
			}
			return c.Insert(ctx, table, columns, rows)
		}
	}
	return b.Send()
}

// Stored sends the keys as an external table, so a batch of any size is one query
// that uses the primary key.
func (c serverConn) Stored(ctx context.Context, table, col string, keys []string, within string) (map[string]bool, error) {
	ids, err := ext.NewTable("sink_keys", ext.Column("key", "String"))
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := ids.Append(k); err != nil {
			return nil, err
		}
	}
	q := fmt.Sprintf("SELECT %[1]s FROM %[2]s WHERE %[1]s IN (SELECT key FROM sink_keys)", col, table)
	if within != "" {
		q += " AND " + within
	}
	rs, err := c.Conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(ids)), q)
	if err != nil {
		return nil, err
	}
	return scanKeys(rs)
}

func scanKeys(rs rows) (map[string]bool, error) {
	out := map[string]bool{}
	for rs.Next() {
		var k string
		if err := rs.Scan(&k); err != nil {
			rs.Close()
			return nil, err
		}
		out[k] = true
	}
	return out, closeRows(rs)
}

// embeddedConn is a database in the process's chDB engine. Its statements run one at a
// time, each in its database (the engine's session is shared by the whole process).
type embeddedConn struct {
	s        *chdb.Session
	database string // empty: the engine's default database
}

func (c *embeddedConn) run(ctx context.Context, query, format string, args []any) ([]byte, error) {
	q, err := bind(query, args)
	if err != nil {
		return nil, err
	}
	return c.s.QueryIn(ctx, c.database, q, format)
}

func (c *embeddedConn) Exec(ctx context.Context, query string, args ...any) error {
	_, err := c.run(ctx, query, "TabSeparated", args)
	return err
}

func (c *embeddedConn) Query(ctx context.Context, query string, args ...any) (rows, error) {
	out, err := c.run(ctx, query, "JSONCompactEachRow", args)
	if err != nil {
		return nil, err
	}
	return &jsonRows{sc: bufio.NewScanner(bytes.NewReader(out))}, nil
}

// Insert sends the rows as TabSeparated text inside the INSERT statement.
func (c *embeddedConn) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") FORMAT TabSeparated\n")
	for i, vals := range rows {
		for j, v := range vals {
			if j > 0 {
				b.WriteByte('\t')
			}
			if err := writeTSV(&b, v); err != nil {
				return &badRowError{Row: i, Err: fmt.Errorf("column %s: %w", columns[j], err)}
			}
		}
		b.WriteByte('\n')
	}
	_, err := c.s.QueryIn(ctx, c.database, b.String(), "TabSeparated")
	return err
}

// InsertColumns sends the rows as TabSeparated text inside the INSERT statement. Each
// row is formatted in a scratch buffer and copied into the statement once.
func (c *embeddedConn) InsertColumns(ctx context.Context, table string, columns []string, cols []any, n int) error {
	var b strings.Builder
	head := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") FORMAT TabSeparated\n"
	b.Grow(len(head) + n*64*len(cols)/4)
	b.WriteString(head)
	row := make([]byte, 0, 1024)
	for i := range n {
		row = row[:0]
		for j, col := range cols {
			if j > 0 {
				row = append(row, '\t')
			}
			row = appendColumnTSV(row, col, i)
		}
		row = append(row, '\n')
		b.Write(row)
	}
	_, err := c.s.QueryIn(ctx, c.database, b.String(), "TabSeparated")
	return err
}

// maxInList bounds the bytes of one lookup's IN list, below the engine's
// max_query_size (262,144 bytes): 10,000 stage-run ids take about 400,000.
const maxInList = 200_000

// Stored lists the keys in the query: chDB has no external tables, and the engine
// parses a 10,000-key IN list in milliseconds. Keys that do not fit one query's size
// limit are looked up in several.
func (c *embeddedConn) Stored(ctx context.Context, table, col string, keys []string, within string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(keys) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "SELECT %s FROM %s WHERE %s IN (", col, table, col)
		n := 0
		for n < len(keys) && (n == 0 || b.Len() < maxInList) {
			if n > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quote(keys[n]))
			n++
		}
		keys = keys[n:]
		b.WriteByte(')')
		if within != "" {
			b.WriteString(" AND " + within)
		}
		rs, err := c.Query(ctx, b.String())
		if err != nil {
			return nil, err
		}
		got, err := scanKeys(rs)
		if err != nil {
			return nil, err
		}
		for k := range got {
			out[k] = true
		}
	}
	return out, nil
}

func (c *embeddedConn) Close() error { return c.s.Close() }

// bind replaces each ? outside quotes and comments with the next argument as a
// ClickHouse literal.
func bind(query string, args []any) (string, error) {
	if len(args) == 0 {
		return query, nil
	}
	var b strings.Builder
	n := 0
	var quoteCh byte
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case quoteCh != 0:
			if ch == '\\' && i+1 < len(query) {
				b.WriteByte(ch)
				i++
				ch = query[i]
			} else if ch == quoteCh {
				quoteCh = 0
			}
		case ch == '\'' || ch == '`' || ch == '"':
			quoteCh = ch
		case ch == '?':
			if n >= len(args) {
				return "", fmt.Errorf("sink: query has more placeholders than the %d arguments", len(args))
			}
			lit, err := literal(args[n])
			if err != nil {
				return "", err
			}
			b.WriteString(lit)
			n++
			continue
		}
		b.WriteByte(ch)
	}
	if n != len(args) {
		return "", fmt.Errorf("sink: query has %d placeholders for %d arguments", n, len(args))
	}
	return b.String(), nil
}

func literal(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return quote(x), nil
	case time.Time:
		return "toDateTime(" + strconv.FormatInt(max(x.Unix(), 0), 10) + ", 'UTC')", nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("sink: cannot bind a %T", v)
}

// quote returns s as a ClickHouse string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// writeTSV writes v in ClickHouse's TabSeparated escaping. Times are whole seconds in
// UTC; a time before 1970 (Go's zero time: not known) is written as the epoch.
func writeTSV(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case string:
		b.Write(appendTSVString(nil, x))
	case time.Time:
		b.Write(appendColumnTSV(nil, []time.Time{x}, 0))
	case float64:
		b.Write(appendTSVFloat(nil, x))
	case float32:
		return writeTSV(b, float64(x))
	case bool:
		if x {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		fmt.Fprint(b, x)
	default:
		return fmt.Errorf("sink: cannot write a %T", v)
	}
	return nil
}

// appendColumnTSV appends value i of an insert's column in TabSeparated, as writeTSV.
func appendColumnTSV(buf []byte, col any, i int) []byte {
	switch d := col.(type) {
	case []string:
		return appendTSVString(buf, d[i])
	case []time.Time:
		if d[i].Unix() <= 0 {
			return append(buf, "1970-01-01 00:00:00"...)
		}
		return d[i].UTC().AppendFormat(buf, time.DateTime)
	case []float64:
		return appendTSVFloat(buf, d[i])
	case []uint8:
		return strconv.AppendUint(buf, uint64(d[i]), 10)
	case []uint16:
		return strconv.AppendUint(buf, uint64(d[i]), 10)
	case []uint32:
		return strconv.AppendUint(buf, uint64(d[i]), 10)
	case []uint64:
		return strconv.AppendUint(buf, d[i], 10)
	case []int8:
		return strconv.AppendInt(buf, int64(d[i]), 10)
	}
	panic(fmt.Sprintf("sink: no column of %T", col))
}

func appendTSVString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '\t':
			buf = append(buf, `\t`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case 0:
			buf = append(buf, `\0`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func appendTSVFloat(buf []byte, x float64) []byte {
	switch {
	case math.IsNaN(x):
		return append(buf, "nan"...)
	case math.IsInf(x, 1):
		return append(buf, "inf"...)
	case math.IsInf(x, -1):
		return append(buf, "-inf"...)
	}
	return strconv.AppendFloat(buf, x, 'g', -1, 64)
}

// jsonRows reads JSONCompactEachRow output: one JSON array per line.
type jsonRows struct {
	sc  *bufio.Scanner
	cur []json.RawMessage
	err error
}

func (r *jsonRows) Next() bool {
	if r.err != nil {
		return false
	}
	for r.sc.Scan() {
		line := bytes.TrimSpace(r.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r.cur = nil
		if err := json.Unmarshal(line, &r.cur); err != nil {
			r.err = fmt.Errorf("sink: read chDB row: %w", err)
			return false
		}
		return true
	}
	r.err = r.sc.Err()
	return false
}

func (r *jsonRows) Err() error   { return r.err }
func (r *jsonRows) Close() error { return nil }

// Scan converts the current row's values into dest: *string, *time.Time, *float64 and
// the integer types. A NULL float (ClickHouse writes nan as null in JSON) is NaN.
func (r *jsonRows) Scan(dest ...any) error {
	if len(dest) != len(r.cur) {
		return fmt.Errorf("sink: scan %d values into %d destinations", len(r.cur), len(dest))
	}
	for i, d := range dest {
		raw := r.cur[i]
		// 64-bit integers arrive quoted; numbers otherwise.
		text := string(raw)
		if s, err := strconv.Unquote(text); err == nil && len(text) > 0 && text[0] == '"' {
			text = s
		}
		var err error
		switch p := d.(type) {
		case *string:
			err = json.Unmarshal(raw, p)
		case *time.Time:
			*p, err = parseTime(text)
		case *float64:
			if text == "null" {
				*p = math.NaN()
			} else {
				*p, err = strconv.ParseFloat(text, 64)
			}
		case *uint64:
			*p, err = strconv.ParseUint(text, 10, 64)
		case *uint32:
			var n uint64
			n, err = strconv.ParseUint(text, 10, 32)
			*p = uint32(n)
		case *uint8:
			var n uint64
			n, err = strconv.ParseUint(text, 10, 8)
			*p = uint8(n)
		case *int64:
			*p, err = strconv.ParseInt(text, 10, 64)
		case *int8:
			var n int64
			n, err = strconv.ParseInt(text, 10, 8)
			*p = int8(n)
		case *any:
			err = json.Unmarshal(raw, p)
		default:
			err = fmt.Errorf("unsupported destination %T", d)
		}
		if err != nil {
			return fmt.Errorf("sink: scan column %d (%s): %w", i+1, raw, err)
		}
	}
	return nil
}

// parseTime reads a DateTime or DateTime64 as written in UTC, or a Date.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %q", s)
}
