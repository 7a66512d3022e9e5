package sink

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for Config.
const (
	DefaultDatabase      = "studio"
	DefaultUser          = "default"
	DefaultBatchRows     = 10000
	DefaultFlushInterval = time.Second
)

// Config is the sink's configuration. Flags registered by RegisterFlags also read the
// environment variable named in their help text (a flag on the command line wins).
type Config struct {
	// Addr lists ClickHouse native-protocol addresses, host:port, comma separated.
	// Empty selects the embedded engine when EmbeddedDir is set, else disables the
	// sink (studio up then leaves events in their streams).
	Addr string
	// EmbeddedDir is the data directory of the embedded engine, chDB (the in-process
	// ClickHouse), used when Addr is empty. One per process.
	EmbeddedDir string
	// ChDBLibrary is the path of libchdb.so for the embedded engine (internal/assets.ChDB).
	ChDBLibrary string
	Database    string
	User        string
	Password    string
	// TLS connects with TLS (ClickHouse Cloud, servers with a secure native port).
	TLS bool
	// BatchRows flushes a stream's batch once it holds this many messages.
	BatchRows int
	// FlushInterval flushes a batch this long after its first message arrived, however
	// small it is; it bounds how stale ClickHouse is.
	FlushInterval time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// QueryTimeout bounds one insert or query.
	QueryTimeout time.Duration
	// Migrate applies pending migrations when the sink starts (studio migrate does it
	// explicitly). When false the sink refuses to start on an outdated schema.
	Migrate bool
	// AckWait is how long a fetched message may stay unacknowledged before the server
	// redelivers it; the sink renews it while it holds a batch (default 1m).
	AckWait time.Duration
	// DrainTimeout bounds the last flush on shutdown; what is not written by then is
	// handed back to the stream.
	DrainTimeout time.Duration
	// Worker identifies this process in DLQ headers.
	Worker string
	// Log receives progress and problems (default: logrus' standard logger).
	Log logrus.FieldLogger
}

// RegisterFlags adds the settings to fs with defaults taken from the environment
// (STUDIO_CLICKHOUSE_ADDR, STUDIO_CLICKHOUSE_DATABASE, STUDIO_CLICKHOUSE_USER,
// STUDIO_CLICKHOUSE_PASSWORD, STUDIO_CLICKHOUSE_TLS, STUDIO_SINK_BATCH_ROWS,
// STUDIO_SINK_FLUSH_INTERVAL, STUDIO_SINK_MIGRATE).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	str := func(p *string, name, def, help string) {
		fs.StringVar(p, name, env(name, def), help+" ["+envName(name)+"]")
	}
	str(&c.Addr, "clickhouse-addr", "", "ClickHouse native-protocol address(es) host:port, comma separated; empty disables the sink")
	str(&c.Database, "clickhouse-database", DefaultDatabase, "ClickHouse database for the sink's tables")
	str(&c.User, "clickhouse-user", DefaultUser, "ClickHouse user")
	str(&c.Password, "clickhouse-password", "", "ClickHouse password")
	fs.BoolVar(&c.TLS, "clickhouse-tls", envBool("clickhouse-tls", false), "connect to ClickHouse with TLS ["+envName("clickhouse-tls")+"]")
	fs.IntVar(&c.BatchRows, "sink-batch-rows", envInt("sink-batch-rows", DefaultBatchRows), "flush a batch once it holds this many rows ["+envName("sink-batch-rows")+"]")
	fs.DurationVar(&c.FlushInterval, "sink-flush-interval", envDuration("sink-flush-interval", DefaultFlushInterval), "flush a batch this long after its first row, however small ["+envName("sink-flush-interval")+"]")
	fs.BoolVar(&c.Migrate, "sink-migrate", envBool("sink-migrate", true), "apply pending ClickHouse migrations when the sink starts ["+envName("sink-migrate")+"]")
}

// Enabled reports whether a ClickHouse address or an embedded engine is configured.
func (c *Config) Enabled() bool { return strings.TrimSpace(c.Addr) != "" || c.EmbeddedDir != "" }

// Embedded reports whether the sink writes into the embedded engine (no address, an
// embedded data directory).
func (c *Config) Embedded() bool { return strings.TrimSpace(c.Addr) == "" && c.EmbeddedDir != "" }

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate fills in defaults and reports the first setting that cannot work, saying
// how to fix it.
func (c *Config) Validate() error {
	if !c.Enabled() {
		return errors.New("sink: no ClickHouse address: set --clickhouse-addr or STUDIO_CLICKHOUSE_ADDR (host:9000)")
	}
	if c.Embedded() && c.ChDBLibrary == "" {
		return errors.New("sink: the embedded engine needs the path of libchdb.so (`studio fetch analytics` caches it)")
	}
	for _, a := range c.addrs() {
		if !strings.Contains(a, ":") {
			return fmt.Errorf("sink: ClickHouse address %q has no port: use host:port (the native protocol, usually 9000 or 9440 with TLS)", a)
		}
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if !identifier.MatchString(c.Database) {
		return fmt.Errorf("sink: database name %q: use letters, digits and '_', starting with a letter", c.Database)
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		return fmt.Errorf("sink: batch rows %d: use 1 to 1000000", c.BatchRows)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.FlushInterval < 10*time.Millisecond {
		return fmt.Errorf("sink: flush interval %s is too short: use at least 10ms", c.FlushInterval)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = time.Minute
	}
	if c.AckWait <= 0 {
		c.AckWait = time.Minute
	}
	if c.AckWait < 2*c.FlushInterval+time.Second {
		return fmt.Errorf("sink: ack wait %s is too short for flush interval %s: messages would be redelivered while they wait for their batch; use at least %s", c.AckWait, c.FlushInterval, 2*c.FlushInterval+time.Second)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Worker == "" {
		host, _ := os.Hostname()
		c.Worker = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	return nil
}

func (c *Config) addrs() []string {
	var out []string
	for _, a := range strings.Split(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func envName(flagName string) string {
	return "STUDIO_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(envName(name)); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(env(name, "")); err == nil {
		return n
	}
	return def
}

func envBool(name string, def bool) bool {
	if b, err := strconv.ParseBool(env(name, "")); err == nil {
		return b
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}
