package sink_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// The kill test runs the sink in a child process (this test binary again) so it can
// be killed with SIGKILL like a crashed pod. These variables configure the child.
const (
	envChild        = "STUDIO_SINK_TEST_CHILD"
	envChildNATS    = "STUDIO_SINK_TEST_CHILD_NATS"
	envChildDB      = "STUDIO_SINK_TEST_CHILD_DB"
	envChildBatch   = "STUDIO_SINK_TEST_CHILD_BATCH"
	envChildCrashAt = "STUDIO_SINK_TEST_CHILD_CRASH_AFTER_COMMIT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(runChild())
	}
	code := m.Run()
	if embeddedDir != "" {
		os.RemoveAll(embeddedDir)
	}
	os.Exit(code)
}

// runChild runs a sink until SIGTERM. With envChildCrashAt=N it SIGKILLs itself right
// after the Nth committed TELEMETRY batch, before that batch is acknowledged.
func runChild() int {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	nc, err := streams.Dial(os.Getenv(envChildNATS), "sink-test-child", "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer nc.Close()
	engine, err := streams.NewEngine(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	batch, _ := strconv.Atoi(os.Getenv(envChildBatch))
	cfg := sink.Config{
		Addr: os.Getenv("STUDIO_TEST_CLICKHOUSE_ADDR"), Database: os.Getenv(envChildDB),
		BatchRows: batch, FlushInterval: 50 * time.Millisecond, AckWait: 3 * time.Second,
		Migrate: true, Log: log, Worker: "child",
	}
	s, err := sink.New(cfg, engine)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if n, _ := strconv.Atoi(os.Getenv(envChildCrashAt)); n > 0 {
		var commits atomic.Int64
		sink.SetAfterCommit(s, func(stream string) {
			if stream == schemas.StreamTelemetry && commits.Add(1) == int64(n) {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // never ack
			}
		})
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
