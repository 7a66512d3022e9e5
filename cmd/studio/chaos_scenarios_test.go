//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// chaosScenario is one row of the fault table: the faults of one round, injected while
// the scenario's jobs run.
type chaosScenario struct {
	name string
	// needs says why the scenario cannot run here ("" when it can).
	needs func(ch *chaos) string
	// span is how long one round of faults lasts; the jobs are submitted over all rounds.
	span time.Duration
	// round injects round r's faults and returns what it did.
	round func(ch *chaos, r int) []string
	// after runs once the scenario's jobs have ended (disk-full gives the space back).
	after func(ch *chaos) ([]string, error)
	// diskFull: the scenario needs a node whose store is a small tmpfs.
	diskFull bool
	// burst: each round's share of the jobs is submitted at once as the round begins,
	// not spread over the span, so that its faults find jobs inside the stages.
	burst bool
	// midStage: the faults must catch jobs inside a stage (the scenario fails when none
	// did: it did not test what it says).
	midStage bool
}

// chaosShortForm is what `go test` runs without STUDIO_CHAOS_SCENARIOS (`make test`).
var chaosShortForm = []string{"stage-kill", "leader-kill", "follower-kill", "partition", "net-split", "minio", "clickhouse", "disk-full", "slow-stage"}

// chaosScenarios are the scenarios in the order "every" runs them.
var chaosScenarios = []chaosScenario{
	{name: "stage-kill", span: 4 * time.Second, round: func(ch *chaos, _ int) []string {
		f := ch.killStage()
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "leader-kill", span: 13 * time.Second, round: func(ch *chaos, _ int) []string {
		f := ch.killMetaLeader(10 * time.Second)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "follower-kill", span: 13 * time.Second, round: func(ch *chaos, _ int) []string {
		f := ch.killFollower(10 * time.Second)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "partition", span: 13 * time.Second, round: func(ch *chaos, r int) []string {
		f := ch.pauseNode(r, 10*time.Second)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "net-split", span: 18 * time.Second, round: func(ch *chaos, r int) []string {
		f := ch.splitNode(r, splitTime)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	// The jobs of a round come at once and MinIO dies as soon as stage workers hold
	// some: their blob calls wait for the store in place (--s3-retry-for), and those
	// that outwait it are redelivered.
	{name: "minio", span: 33 * time.Second, burst: true, midStage: true, needs: func(ch *chaos) string {
		if minioBinary() == "" {
			return "MinIO is not cached (scripts/minio.sh builds it into $STUDIO_CACHE/bin)"
		}
		return ""
	}, round: func(ch *chaos, _ int) []string {
		f := ch.killMinIO(time.Minute, minioOutage)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "clickhouse", span: 48 * time.Second, needs: clickhouseMissing, round: func(ch *chaos, _ int) []string {
		f := ch.killClickHouse(30*time.Second + rand.N(30*time.Second))
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "disk-full", span: 20 * time.Second, diskFull: true, needs: func(ch *chaos) string { return ch.mountSmallStore() },
		round: func(ch *chaos, r int) []string {
			var f []string
			if r == 0 {
				f = append(f, ch.fillSmallStore())
			}
			time.Sleep(20 * time.Second)
			return f
		}, after: (*chaos).freeSmallStore},
	// The jobs come at once, so both inference replicas hold some when one stops.
	{name: "slow-stage", span: 2 * time.Second, round: func(ch *chaos, _ int) []string {
		time.Sleep(2 * time.Second)
		f := ch.stopStage("inference-2", 20*time.Second)
		time.Sleep(3 * time.Second)
		return []string{f}
	}},
	{name: "all", span: 95 * time.Second, diskFull: true, round: func(ch *chaos, r int) []string {
		var f []string
		if r == 0 && ch.smallStore != "" {
			f = append(f, ch.fillSmallStore())
		}
		chDone := make(chan string, 1)
		if ch.clickhouse != nil { // its outage runs beside the others
			go func() { chDone <- ch.killClickHouse(30*time.Second + rand.N(30*time.Second)) }()
		} else {
			chDone <- "no ClickHouse"
		}
		f = append(f, ch.killStage())
		time.Sleep(3 * time.Second)
		f = append(f, ch.killMetaLeader(10*time.Second))
		time.Sleep(3 * time.Second)
		f = append(f, ch.killFollower(10*time.Second))
		time.Sleep(3 * time.Second)
		f = append(f, ch.pauseNode(r, 10*time.Second))
		time.Sleep(3 * time.Second)
		f = append(f, ch.splitNode(r, splitTime))
		time.Sleep(3 * time.Second)
		if ch.minio != nil {
			f = append(f, ch.killMinIO(10*time.Second, minioOutage))
			time.Sleep(3 * time.Second)
		}
		f = append(f, ch.stopStage("inference-2", 20*time.Second))
		return append(f, <-chDone)
	}, after: func(ch *chaos) ([]string, error) {
		if ch.smallStore == "" {
			return nil, nil
		}
		return ch.freeSmallStore()
	}},
}

// chaosSelect returns the scenarios named in list ("" is the short form).
func chaosSelect(t *testing.T, list string) []chaosScenario {
	names := chaosShortForm
	if list != "" {
		names = strings.Split(list, ",")
	}
	var out []chaosScenario
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "every" {
			out = append(out, chaosScenarios...)
			continue
		}
		i := slices.IndexFunc(chaosScenarios, func(s chaosScenario) bool { return s.name == n })
		if i < 0 {
			var all []string
			for _, s := range chaosScenarios {
				all = append(all, s.name)
			}
			t.Fatalf("STUDIO_CHAOS_SCENARIOS: no scenario %q; use a comma-separated list of %s, or every", n, strings.Join(all, ", "))
		}
		out = append(out, chaosScenarios[i])
	}
	return out
}

// chaosRun is what one scenario did and counted.
type chaosRun struct {
	name                                 string
	midStage                             bool // the faults must catch jobs inside a stage
	faults                               []string
	submitted, refused                   int
	succeeded, failed, dead              int
	stuck, noResult, duplicates          int
	failedBy, deadBy                     map[string]int
	analytics                            string // "lost / doubled" or why not counted
	rowsLost, rowsDoubled                int
	runs, redelivered                    int // stage-run telemetry events, those of a delivery after the first
	stall, p99                           time.Duration
	took, load                           time.Duration
	stuckIDs, silentIDs, lostRows, extra []string
	want                                 int
}

func (r *chaosRun) row() string {
	by := func(m map[string]int) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		if len(parts) == 0 {
			return ""
		}
		return " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("| %s | %s | %d (%d) | %d | %d%s | %d%s | %d | %d | %d | %s | %s | %s | %s (%s) |", r.name, strings.Join(r.faults, "; "),
		r.submitted, r.refused, r.succeeded, r.failed, by(r.failedBy), r.dead, by(r.deadBy), r.stuck, r.noResult, r.duplicates,
		r.analytics, r.stall.Round(100*time.Millisecond), r.p99.Round(100*time.Millisecond), r.took.Round(time.Second), r.load.Round(time.Second))
}

// check fails the test for what must never happen: a job stuck, final without a result
// event, failed or ended twice, an analytics row lost or doubled.
func (r *chaosRun) check(t *testing.T) {
	t.Helper()
	if r.stuck > 0 {
		t.Errorf("%s: %d jobs stuck (not final once they stopped ending): %v", r.name, r.stuck, first(r.stuckIDs, 5))
	}
	if r.noResult > 0 {
		t.Errorf("%s: %d jobs are final with no result event: %v", r.name, r.noResult, first(r.silentIDs, 5))
	}
	if r.duplicates > 0 {
		t.Errorf("%s: %d jobs have more than one result", r.name, r.duplicates)
	}
	if r.failed > 0 {
		t.Errorf("%s: %d jobs failed (inputs are all valid): %v", r.name, r.failed, r.failedBy)
	}
	if r.rowsLost > 0 || r.rowsDoubled > 0 {
		t.Errorf("%s: analytics rows lost %d, doubled %d: %v", r.name, r.rowsLost, r.rowsDoubled, first(r.lostRows, 5))
	}
	if r.midStage && !slices.ContainsFunc(r.faults, func(f string) bool { return strings.Contains(f, faultMidStage) }) {
		t.Errorf("%s: the faults caught no job inside a stage: %v", r.name, r.faults)
	}
	if r.submitted != r.want {
		t.Errorf("%s: %d of %d jobs were accepted", r.name, r.submitted, r.want)
	}
	for _, e := range r.extra {
		t.Errorf("%s: %s", r.name, e)
	}
}

// runScenario submits n jobs over the scenario's rounds of faults, waits for them to
// end and counts.
func (ch *chaos) runScenario(s chaosScenario, n, rounds int) *chaosRun {
	t := ch.t
	r := &chaosRun{name: s.name, midStage: s.midStage, want: n, failedBy: map[string]int{}, deadBy: map[string]int{}}
	dlqFrom, telFrom := ch.lastSeq(schemas.StreamDLQ), ch.lastSeq(schemas.StreamTelemetry)
	began := time.Now()

	var mu sync.Mutex
	submittedAt := map[string]time.Time{}
	faultsDone := make(chan struct{})
	roundBegins := make(chan struct{}, rounds)
	go func() {
		defer close(faultsDone)
		for i := range rounds {
			roundBegins <- struct{}{}
			f := s.round(ch, i)
			mu.Lock()
			r.faults = append(r.faults, f...)
			mu.Unlock()
		}
	}()
	// The jobs are spread over the rounds' faults (or come at once as each round
	// begins: burst), three clients at a time; a refused submission (503 during an
	// outage, connection refused) is retried.
	span := s.span * time.Duration(rounds)
	queue := make(chan int)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				for attempt := 0; ; attempt++ {
					id, status, err := chaosSubmit(ch.api, i)
					if err == nil && status == http.StatusAccepted {
						mu.Lock()
						submittedAt[id] = time.Now()
						r.submitted++
						mu.Unlock()
						break
					}
					mu.Lock()
					r.refused++
					mu.Unlock()
					if attempt > 120 {
						t.Errorf("%s: job %d refused 120 times: %d %v", s.name, i, status, err)
						break
					}
					time.Sleep(time.Second)
				}
			}
		}()
	}
	for i := range n {
		if !s.burst {
			time.Sleep(time.Until(began.Add(span * time.Duration(i) / time.Duration(n))))
		} else if i == 0 || i*rounds/n != (i-1)*rounds/n {
			<-roundBegins // round i*rounds/n's first job
		}
		queue <- int(ch.next.Add(1))
	}
	close(queue)
	wg.Wait()
	<-faultsDone
	loadEnded := time.Now()
	r.load = loadEnded.Sub(began)

	ids := make([]string, 0, len(submittedAt))
	for id := range submittedAt {
		ids = append(ids, id)
	}
	// Every job must end. The wait follows progress, not the wall clock: on a loaded
	// machine the cluster may take minutes to drain, but it keeps finishing jobs. It
	// ends when every job has its result event, when none has ended for chaosStall
	// (past the stages' retries: AckWait 5 s x 5 deliveries plus backoff), or after
	// chaosWaitMax in all.
	const chaosStall, chaosWaitMax = 2 * time.Minute, 15 * time.Minute
	open := func() []string {
		ch.results.poll(t)
		return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return len(ch.results.byJob[id]) > 0 })
	}
	waitAll := func() []string {
		waiting := open()
		for waitStart, lastProgress := time.Now(), time.Now(); len(waiting) > 0 && time.Since(lastProgress) < chaosStall && time.Since(waitStart) < chaosWaitMax; {
			time.Sleep(2 * time.Second)
			o := open()
			if len(o) < len(waiting) {
				lastProgress = time.Now()
			}
			waiting = o
		}
		return waiting
	}
	waiting := waitAll()
	if s.after != nil {
		// What the fault held up (a disk full) goes on once it is over: wait again.
		f, err := s.after(ch)
		r.faults = append(r.faults, f...)
		if err != nil {
			r.extra = append(r.extra, err.Error())
		}
		if len(waiting) > 0 {
			r.faults = append(r.faults, fmt.Sprintf("%d jobs open until then", len(waiting)))
			waiting = waitAll()
		}
	}
	waitEnded := time.Now()
	// Without a result event: stuck (not final) or final without its event.
	for _, id := range waiting {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rec, err := ch.store.Get(ctx, id)
		cancel()
		if err == nil && rec.Status.Final() {
			r.noResult++
			r.silentIDs = append(r.silentIDs, fmt.Sprintf("%s %s at %s", id, rec.Status, rec.Stage))
			continue
		}
		r.stuck++
		r.stuckIDs = append(r.stuckIDs, id)
	}

	// Results, latency and the longest stall.
	type event struct {
		at   time.Time
		open int
	}
	var events []event
	var latencies []time.Duration
	for _, id := range ids {
		events = append(events, event{submittedAt[id], +1})
		res := ch.results.byJob[id]
		if len(res) == 0 {
			continue
		}
		if len(res) > 1 {
			r.duplicates++
		}
		if res[0].status == schemas.StatusSucceeded {
			r.succeeded++
		} else {
			r.failed++
			r.failedBy[res[0].code]++
		}
		events = append(events, event{res[0].at, -1})
		latencies = append(latencies, max(0, res[0].at.Sub(submittedAt[id])))
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	openJobs, since := 0, time.Time{}
	for _, e := range events {
		if e.open > 0 {
			if openJobs == 0 {
				since = e.at
			}
			openJobs++
			continue
		}
		if openJobs > 0 {
			r.stall = max(r.stall, e.at.Sub(since))
		}
		openJobs--
		since = e.at
	}
	if openJobs > 0 {
		r.stall = max(r.stall, waitEnded.Sub(since))
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		r.p99 = latencies[int(math.Ceil(0.99*float64(len(latencies))))-1]
	}
	ch.scan(schemas.StreamDLQ, dlqFrom+1, func(m *jetstream.RawStreamMsg) {
		r.dead++
		r.deadBy[truncateReason(m.Header.Get(streams.HeaderDLQStage)+": "+m.Header.Get(streams.HeaderDLQReason))]++
	})
	ch.countAnalytics(r, ids, telFrom+1)
	r.took = time.Since(began)
	return r
}

// chaosResult is one result event of a job.
type chaosResult struct {
	status schemas.Status
	code   string
	at     time.Time // when the stream stored it
}

// streamCursor reads RESULTS as it grows: every call reads the messages stored since
// the last one. Reads go to the stream leader (direct get is off), so a leader change
// or a paused node only delays them.
type streamCursor struct {
	js     jetstream.JetStream
	stream string
	next   uint64
	byJob  map[string][]chaosResult
}

func (c *streamCursor) poll(t *testing.T) {
	if c.byJob == nil {
		c.byJob = map[string][]chaosResult{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.js.Stream(ctx, c.stream)
	if err != nil {
		return // an election: next time
	}
	info, err := st.Info(ctx)
	if err != nil {
		return
	}
	c.next = max(c.next, info.State.FirstSeq)
	for ; c.next <= info.State.LastSeq && info.State.Msgs > 0; c.next++ {
		m, err := st.GetMsg(ctx, c.next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return // read it again next time
		}
		var ev schemas.ResultEvent
		if json.Unmarshal(m.Data, &ev) != nil {
			continue
		}
		res := chaosResult{status: ev.Status, at: m.Time}
		if ev.Error != nil {
			res.code = ev.Error.Code
		}
		c.byJob[ev.JobID] = append(c.byJob[ev.JobID], res)
	}
}

// lastSeq is the stream's last sequence (0 when it cannot be read).
func (ch *chaos) lastSeq(stream string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := ch.js.Stream(ctx, stream)
	if err != nil {
		ch.t.Errorf("stream %s: %v", stream, err)
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		ch.t.Errorf("stream %s: %v", stream, err)
		return 0
	}
	return info.State.LastSeq
}

// scan calls fn with every message of stream from sequence from on.
func (ch *chaos) scan(stream string, from uint64, fn func(*jetstream.RawStreamMsg)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := ch.js.Stream(ctx, stream)
	if err != nil {
		ch.t.Errorf("stream %s: %v", stream, err)
		return
	}
	info, err := st.Info(ctx)
	if err != nil {
		ch.t.Errorf("stream %s: %v", stream, err)
		return
	}
	for seq := max(from, info.State.FirstSeq); info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		for try := 0; err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && try < 5; try++ {
			time.Sleep(time.Second)
			m, err = st.GetMsg(ctx, seq)
		}
		if err == nil {
			fn(m)
		}
	}
}

var chaosID = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// countAnalytics finds in ClickHouse the rows the sink writes for the scenario's jobs:
// one row in jobs per result event and one row in stage_runs per stage-run telemetry
// event, each exactly once. The tables are ReplacingMergeTrees keyed by those ids, so
// a row written twice disappears only when its parts merge: doubled rows are counted
// without FINAL (what a query without FINAL would see).
func (ch *chaos) countAnalytics(r *chaosRun, ids []string, telFrom uint64) {
	want := map[string]bool{}
	var quoted []string
	for _, id := range ids {
		if !chaosID.MatchString(id) {
			ch.t.Fatalf("job id %q has characters this query does not quote", id)
		}
		want[id] = true
		quoted = append(quoted, "'"+id+"'")
	}
	runs, redelivered := map[string]bool{}, 0
	addRun := func(run *schemas.StageRun) {
		if !want[run.JobID] {
			return
		}
		id := sink.StageRunID(run)
		if !runs[id] && run.Attempt > 1 {
			redelivered++
		}
		runs[id] = true
	}
	// Stage runs come batched (studio.telemetry.batch/v1) or, from older producers, one
	// a message.
	ch.scan(schemas.StreamTelemetry, telFrom, func(m *jetstream.RawStreamMsg) {
		var head struct {
			Schema string `json:"schema"`
		}
		if json.Unmarshal(m.Data, &head) != nil {
			return
		}
		switch head.Schema {
		case schemas.SchemaStageRun:
			var run schemas.StageRun
			if json.Unmarshal(m.Data, &run) == nil {
				addRun(&run)
			}
		case schemas.SchemaTelemetryBatch:
			var b schemas.TelemetryBatch
			if json.Unmarshal(m.Data, &b) == nil {
				for i := range b.StageRuns {
					addRun(&b.StageRuns[i])
				}
			}
		}
	})
	r.runs, r.redelivered = len(runs), redelivered
	if ch.clickhouse == nil {
		r.analytics = fmt.Sprintf("not counted (no ClickHouse); stage runs %d, %d of a redelivery", len(runs), redelivered)
		return
	}
	results := map[string]bool{}
	for _, id := range ids {
		if len(ch.results.byJob[id]) > 0 {
			results[id] = true
		}
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.clickhouseAddr}, Auth: clickhouse.Auth{Username: "default"}, DialTimeout: 5 * time.Second})
	if err != nil {
		r.analytics = "not counted: " + err.Error()
		r.extra = append(r.extra, "connect to ClickHouse: "+err.Error())
		return
	}
	defer conn.Close()
	in := strings.Join(quoted, ",")
	counts := func(query string) (map[string]uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rows, err := conn.Query(ctx, query)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]uint64{}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				return nil, err
			}
			out[id] = n
		}
		return out, rows.Err()
	}
	// The sink writes behind the pipeline (and waits out a ClickHouse outage): wait for
	// as long as rows keep arriving.
	var jobRows, runRows map[string]uint64
	missing := func() int {
		n := 0
		for id := range results {
			if jobRows[id] == 0 {
				n++
			}
		}
		for id := range runs {
			if runRows[id] == 0 {
				n++
			}
		}
		return n
	}
	last, lastProgress, started := -1, time.Now(), time.Now()
	for {
		j, err1 := counts("SELECT job_id, count() FROM chaos.jobs WHERE job_id IN (" + in + ") GROUP BY job_id")
		s, err2 := counts("SELECT run_id, count() FROM chaos.stage_runs WHERE job_id IN (" + in + ") GROUP BY run_id")
		if err1 == nil && err2 == nil {
			jobRows, runRows = j, s
			m := missing()
			if m == 0 {
				break
			}
			if last < 0 || m < last {
				last, lastProgress = m, time.Now()
			}
		}
		if time.Since(lastProgress) > 90*time.Second || time.Since(started) > 10*time.Minute {
			if err1 != nil || err2 != nil {
				r.extra = append(r.extra, fmt.Sprintf("query ClickHouse: %v %v", err1, err2))
			}
			break
		}
		time.Sleep(2 * time.Second)
	}
	var lostJobs, lostRuns, doubledJobs, doubledRuns int
	for id := range results {
		if jobRows[id] == 0 {
			lostJobs++
			r.lostRows = append(r.lostRows, "jobs "+id)
		}
	}
	for id := range runs {
		if runRows[id] == 0 {
			lostRuns++
			r.lostRows = append(r.lostRows, "stage_runs "+id)
		}
	}
	for id, n := range jobRows {
		if n > 1 {
			doubledJobs++
			r.lostRows = append(r.lostRows, fmt.Sprintf("jobs %s x%d", id, n))
		}
	}
	for id, n := range runRows {
		if n > 1 {
			doubledRuns++
			r.lostRows = append(r.lostRows, fmt.Sprintf("stage_runs %s x%d", id, n))
		}
	}
	r.rowsLost, r.rowsDoubled = lostJobs+lostRuns, doubledJobs+doubledRuns
	r.analytics = fmt.Sprintf("%d / %d (jobs %d rows: %d / %d; stage_runs %d rows, %d of a redelivery: %d / %d)",
		r.rowsLost, r.rowsDoubled, len(results), lostJobs, doubledJobs, len(runs), redelivered, lostRuns, doubledRuns)
}

func minioBinary() string {
	bins, _ := filepath.Glob(filepath.Join(assets.DefaultDir(), "bin", "minio-*"))
	if len(bins) == 0 {
		return ""
	}
	return bins[0]
}

// clickhouseMissing says why the ClickHouse scenario cannot run ("" when it can).
func clickhouseMissing(*chaos) string {
	for _, b := range []string{"clickhouse-server", "clickhouse-client"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " is not installed (scripts/clickhouse.sh installs it with apt-get; `make test` runs it)"
		}
	}
	return ""
}

// startClickHouse starts a private ClickHouse server: scripts/clickhouse.sh writes its
// configuration (free loopback ports, a data dir under the test's) and is stopped again
// at once, so that the server runs as this test's own process, which it can kill -9 and
// start again on the same ports and data.
func (ch *chaos) startClickHouse() {
	if why := clickhouseMissing(ch); why != "" {
		ch.t.Logf("no ClickHouse: %s; no sink, analytics rows not counted", why)
		return
	}
	bin, _ := exec.LookPath("clickhouse-server")
	run := filepath.Join(ch.dir, "clickhouse")
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "clickhouse.sh"))
	if err != nil {
		ch.t.Fatal(err)
	}
	env := append(os.Environ(), "STUDIO_CLICKHOUSE_RUN_DIR="+run)
	cmd := exec.Command(script, "start")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		ch.t.Fatalf("scripts/clickhouse.sh start: %v\n%s", err, out)
	}
	cmd = exec.Command(script, "pause")
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		ch.t.Fatalf("scripts/clickhouse.sh pause: %v\n%s", err, b)
	}
	ports, err := os.ReadFile(filepath.Join(run, "ports"))
	f := strings.Fields(string(ports))
	if err != nil || len(f) < 2 {
		ch.t.Fatalf("read the ClickHouse ports scripts/clickhouse.sh wrote: %v %q", err, ports)
	}
	ch.clickhouseAddr = "127.0.0.1:" + f[0]
	ch.clickhouse = &chaosProc{name: "clickhouse", bin: bin, log: filepath.Join(run, "chaos-stdout.log"),
		args: []string{"--config-file=" + filepath.Join(run, "config.xml")}, env: os.Environ()}
	ch.start(ch.clickhouse)
	waitHTTP(ch.t, "http://127.0.0.1:"+f[1]+"/ping", 2*time.Minute)
}

// killClickHouse kill -9s ClickHouse and starts it again after down.
func (ch *chaos) killClickHouse(down time.Duration) string {
	ch.clickhouse.kill9()
	time.Sleep(down)
	ch.start(ch.clickhouse)
	return fmt.Sprintf("kill -9 ClickHouse, %s down", down.Round(time.Second))
}

// stopStage stops the named stage process with SIGSTOP for longer than its AckWait: the
// messages it holds are redelivered to the other replica meanwhile, and when it wakes
// (SIGCONT) it finishes what it was doing on messages that have moved on.
func (ch *chaos) stopStage(name string, down time.Duration) string {
	i := slices.IndexFunc(ch.stages, func(p *chaosProc) bool { return p.name == name })
	p := ch.stages[i]
	if p.cmd == nil || p.cmd.Process == nil {
		return "no " + name + " to stop"
	}
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(down)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	return fmt.Sprintf("SIGSTOP %s %s (AckWait 5 s)", name, down)
}

const smallStoreSize = "128m"

// mountSmallStore mounts a tmpfs of smallStoreSize as the store of node n2 (done before
// the cluster starts). It says why it cannot ("" when it did).
func (ch *chaos) mountSmallStore() string {
	if ch.smallStore != "" {
		return ""
	}
	dir := filepath.Join(ch.dir, "small-store")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+smallStoreSize, "tmpfs", dir).CombinedOutput(); err != nil {
		// The fallback the issue names, a node's max_file_store, cannot stand in: the
		// server reserves each 3-replica stream's MaxBytes on every peer when it places
		// it, so a node with a small limit gets no stream and the streams cannot be
		// placed on three nodes at all.
		return fmt.Sprintf("mount -t tmpfs needs root (CAP_SYS_ADMIN): %v %s", err, strings.TrimSpace(string(out)))
	}
	ch.t.Cleanup(func() { // after stopAll (cleanups run last first)
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			ch.t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	ch.smallStore, ch.smallNode = dir, 2
	return ""
}

// fillSmallStore writes a file into the small store until the disk is full.
func (ch *chaos) fillSmallStore() string {
	f, err := os.Create(filepath.Join(ch.smallStore, "filler"))
	if err != nil {
		return "fill the small store: " + err.Error()
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	written := 0
	for {
		n, err := f.Write(buf)
		written += n
		if err != nil {
			break
		}
	}
	log, _ := os.ReadFile(ch.nodes[ch.smallNode].log)
	ch.disabledBefore = strings.Count(string(log), "DISABLED")
	return fmt.Sprintf("disk of n%d full (tmpfs %s, %d MiB of filler)", ch.smallNode, smallStoreSize, written>>20)
}

// freeSmallStore gives the space back and restarts the node when the server turned
// JetStream off on its full disk, then waits until the node is current again (its
// /healthz: every stream and consumer it holds caught up).
func (ch *chaos) freeSmallStore() ([]string, error) {
	if err := os.Remove(filepath.Join(ch.smallStore, "filler")); err != nil {
		return nil, fmt.Errorf("free the small store: %w", err)
	}
	p := ch.nodes[ch.smallNode]
	log, _ := os.ReadFile(p.log)
	disabled := strings.Count(string(log), "DISABLED") > ch.disabledBefore
	what := fmt.Sprintf("space back on n%d", ch.smallNode)
	if disabled {
		// JetStream stays off on that server until it restarts.
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.kill9()
		}
		ch.start(p)
		what += ", restarted (the server had turned JetStream off on the full disk)"
	}
	began := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", ch.monitorPorts[ch.smallNode])
	for time.Since(began) < 5*time.Minute {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return []string{what + fmt.Sprintf(", current after %s", time.Since(began).Round(time.Second))}, nil
			}
		}
		time.Sleep(time.Second)
	}
	return []string{what}, fmt.Errorf("n%d not current (/healthz) 5 min after its disk had space again", ch.smallNode)
}

// minioOutage is how long the object store stays down in the minio and all scenarios:
// the 30-60 s, longer than the stages' first few redeliveries.
const minioOutage = 30 * time.Second

// splitTime is how long the net-split scenario keeps its split: past the longest
// election timeout (9 s), so the side that stops hearing a leader elects another.
const splitTime = 15 * time.Second
