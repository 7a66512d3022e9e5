package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestEveryProcessStartsAtOnceOnAFreshCluster starts a 3-node cluster and, the moment
// its nodes accept connections (no meta leader yet, nothing provisioned), one process
// per stage on every node, all at once: each connects and provisions (Connect) and
// creates its consumers (NewRunner). All must come up, and a request published then
// must reach the preprocess stage.
func TestEveryProcessStartsAtOnceOnAFreshCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := streamstest.StartClusterNodes(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.InfoLevel)
	var handled atomic.Int64
	h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		handled.Add(1)
		return nil, nil
	})
	type proc struct {
		name string
		bus  *Bus
		r    *streams.Runner
		err  error
	}
	var procs []*proc
	var wg sync.WaitGroup
	began := time.Now()
	for node := range c.Servers {
		for _, row := range processors.Stages {
			p := &proc{name: fmt.Sprintf("%s@n%d", row.Name, node)}
			procs = append(procs, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Twelve processes provisioning every stream and bucket at R3 on one
				// machine that also runs the other test packages: give the elections time.
				cfg := &Config{NATSURL: c.Servers[node].ClientURL(), Replicas: 3, Worker: p.name, StartupWait: 6 * time.Minute}
				if p.bus, p.err = Connect(ctx, cfg, p.name, log); p.err != nil {
					return
				}
				spec, err := row.Consumers("startup")
				if err != nil {
					p.err = err
					return
				}
				p.r, p.err = streams.NewRunner(ctx, p.bus.NC, p.bus.JS, h, streams.RunnerConfig{
					Stage: row.Name, Worker: p.name, Spec: spec, PullExpiry: time.Second, DrainTimeout: time.Second, Log: log,
				})
			}()
		}
	}
	wg.Wait()
	var runs sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		runs.Wait()
		for _, p := range procs {
			if p.bus != nil {
				p.bus.Close()
			}
		}
	})
	for _, p := range procs {
		if p.err != nil {
			for _, e := range hook.AllEntries() {
				t.Logf("%s %s %v", e.Time.Format("15:04:05.000"), e.Message, e.Data)
			}
			t.Fatalf("%s did not start on a fresh cluster: %v", p.name, p.err)
		}
		runs.Add(1)
		go func() {
			defer runs.Done()
			_ = p.r.Run(ctx)
		}()
	}
	retries := 0
	for _, e := range hook.AllEntries() {
		if testing.Verbose() {
			t.Logf("%s %s %v", e.Time.Format("15:04:05.000"), e.Message, e.Data)
		}
		if strings.Contains(e.Message, "JetStream not ready") {
			retries++
		}
	}
	t.Logf("%d processes up %s after the nodes started; %d start-up calls retried while the cluster elected leaders",
		len(procs), time.Since(began).Round(time.Millisecond), retries)

	row, err := processors.Lookup(schemas.StagePreprocess)
	if err != nil {
		t.Fatal(err)
	}
	subject := strings.NewReplacer("*", "x", ">", "x").Replace(row.Filter(schemas.TierNormal, ""))
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if _, err := procs[0].bus.JS.Publish(pctx, subject, []byte(`{}`)); err != nil {
		t.Fatalf("publish a request on %s: %v", subject, err)
	}
	streamstest.Eventually(t, 30*time.Second, func() bool { return handled.Load() >= 1 },
		"the request on %s never reached a preprocess runner", subject)
}
