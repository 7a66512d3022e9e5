package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

const skipMessage = "STUDIO_TEST_CLICKHOUSE_ADDR is not set, so the sink tests have no ClickHouse server: " +
	"run `eval \"$(scripts/clickhouse.sh start)\"` (installs and starts a local one) or `make test`"

// clickhouseAddr returns the test server's address or skips the test.
func clickhouseAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("STUDIO_TEST_CLICKHOUSE_ADDR")
	if addr == "" {
		if os.Getenv("STUDIO_REQUIRE_CLICKHOUSE") == "1" {
			t.Fatal(skipMessage) // CI asked for the server: a missing one is a failure
		}
		t.Skip(skipMessage)
	}
	return addr
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// testConfig returns a sink config for a fresh database that is dropped at cleanup.
func testConfig(t testing.TB, addr string) sink.Config {
	t.Helper()
	name := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	db := fmt.Sprintf("sinktest_%s_%d", name, time.Now().UnixNano()%1e9)
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if testing.Verbose() {
		log.SetLevel(logrus.InfoLevel)
	}
	if lvl, err := logrus.ParseLevel(os.Getenv("STUDIO_TEST_SINK_LOG")); err == nil {
		log.SetLevel(lvl)
	}
	cfg := sink.Config{
		Addr:          addr,
		Database:      db,
		BatchRows:     500,
		FlushInterval: 100 * time.Millisecond,
		DialTimeout:   2 * time.Second,
		QueryTimeout:  20 * time.Second,
		AckWait:       3 * time.Second,
		DrainTimeout:  5 * time.Second,
		Migrate:       true,
		Log:           log,
	}
	if addr == "" { // the caller configures the embedded engine and its cleanup
		return cfg
	}
	require.NoError(t, cfg.Validate())
	t.Cleanup(func() {
		conn := openCH(t, addr, "")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("drop test database %s: %v", db, err)
		}
	})
	return cfg
}

// openCH opens a client for the test's own queries.
func openCH(t testing.TB, addr, db string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: db, Username: "default"},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// running is a sink started in this process.
type running struct {
	*sink.Sink
	stop func()
}

// startSink runs a sink against srv until stop or cleanup.
func startSink(t testing.TB, srv *streamstest.Server, cfg sink.Config, hooks ...func(*sink.Sink)) *running {
	t.Helper()
	s, err := sink.New(cfg, streams.Engine{JS: srv.JS})
	require.NoError(t, err)
	for _, h := range hooks {
		h(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Errorf("sink did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return &running{Sink: s, stop: stop}
}

// publish sends JSON events with message ids, as the pipeline does.
func publish(t testing.TB, srv *streamstest.Server, outs ...streams.Output) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := streams.JSPublisher{JS: srv.JS}
	for len(outs) > 0 {
		n := min(len(outs), 2000)
		require.NoError(t, pub.Publish(ctx, outs[:n]...))
		outs = outs[n:]
	}
}

func jsonOutput(t testing.TB, subject, msgID string, v any) streams.Output {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return streams.Output{Subject: subject, MsgID: msgID, Data: data}
}

// count runs a count query.
func count(t testing.TB, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	require.NoError(t, conn.QueryRow(ctx, q, args...).Scan(&n), q)
	return n
}

// waitCount polls q until it returns want.
func waitCount(t testing.TB, conn driver.Conn, timeout time.Duration, want uint64, q string, args ...any) {
	t.Helper()
	var got uint64
	deadline := time.Now().Add(timeout)
	for {
		got = count(t, conn, q, args...)
		if got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, want, got, "after %s: %s", timeout, q)
}

// queryRows reads every row of q as Go values (numbers as float64 or int64, times as
// UTC time.Time, strings, arrays as []any).
func queryRows(t testing.TB, conn driver.Conn, q string) [][]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, q)
	require.NoError(t, err, q)
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]any
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		require.NoError(t, rows.Scan(dest...))
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = normalize(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	require.NoError(t, rows.Err())
	return out
}

func normalize(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case string:
		return x
	case float64:
		return x
	case float32:
		return float64(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	case reflect.Slice:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

// requireRows compares query results with expectations. Numbers in column j match
// within tols[j] (absolute; columns beyond tols within 1e-9): expectations are exact,
// and the tolerance covers the query's rounding.
func requireRows(t testing.TB, name string, want, got [][]any, tols ...float64) {
	t.Helper()
	require.Len(t, got, len(want), "%s: row count\nwant %v\n got %v", name, want, got)
	for i := range want {
		require.Len(t, got[i], len(want[i]), "%s row %d: column count", name, i)
		for j := range want[i] {
			w, g := normalize(want[i][j]), got[i][j]
			wf, wok := w.(float64)
			gf, gok := g.(float64)
			if wok && gok {
				tol := 1e-9
				if j < len(tols) {
					tol = tols[j]
				}
				if math.IsNaN(wf) && math.IsNaN(gf) {
					continue
				}
				if math.Abs(wf-gf) > tol || math.IsNaN(wf) != math.IsNaN(gf) {
					t.Fatalf("%s row %d column %d: want %v, got %v\nwant row %v\n got row %v", name, i, j, wf, gf, want[i], got[i])
				}
				continue
			}
			require.Equal(t, w, g, "%s row %d column %d\nwant row %v\n got row %v", name, i, j, want[i], got[i])
		}
	}
}

// waitWritten polls until the sink has acknowledged n messages after writing them.
func waitWritten(t testing.TB, s *running, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Stats().Messages+s.Stats().DeadLetters < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s the sink has written %d of %d messages: %+v", timeout, s.Stats().Messages, n, s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
