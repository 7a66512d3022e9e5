package sink_test

import (
	"math"
	"sort"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// ingested is a dataset written by a sink.
type ingested struct {
	conn driver.Conn
	sink *running
	srv  *streamstest.Server
	cfg  sink.Config
	sent uint64
}

// ingest publishes a dataset, runs a sink until every message is written, and returns
// a client for the test database.
func ingest(t *testing.T, d *dataset) *ingested {
	t.Helper()
	in := ingestInto(t, d, testConfig(t, clickhouseAddr(t)))
	in.conn = openCH(t, in.cfg.Addr, in.cfg.Database)
	return in
}

// ingestInto is ingest into the database of cfg, on either engine; it leaves conn nil.
func ingestInto(t *testing.T, d *dataset, cfg sink.Config) *ingested {
	t.Helper()
	srv := streamstest.Start(t)
	outs := d.outputs(t)
	publish(t, srv, outs...)
	s := startSink(t, srv, cfg)
	waitWritten(t, s, uint64(len(outs)), 60*time.Second)
	return &ingested{sink: s, srv: srv, cfg: cfg, sent: uint64(len(outs))}
}

func sec(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func TestSinkWritesEveryEventWithItsValues(t *testing.T) {
	d := newDataset(time.Now().UTC(), 400, 1)
	in := ingest(t, d)
	conn := in.conn
	st := in.sink.Stats()
	require.Equal(t, uint64(len(d.jobs)), st.Rows["jobs"])
	require.Equal(t, uint64(d.stageRuns()), st.Rows["stage_runs"])
	require.Zero(t, st.Duplicates)
	require.Zero(t, st.DeadLetters)

	t.Run("jobs hold one row per job with the result's values", func(t *testing.T) {
		var want [][]any
		jobs := append([]*job(nil), d.jobs...)
		sort.Slice(jobs, func(a, b int) bool { return jobs[a].ev.JobID < jobs[b].ev.JobID })
		for _, j := range jobs {
			ev := j.ev
			var code, msg, stage string
			if ev.Error != nil {
				code, msg, stage = ev.Error.Code, ev.Error.Message, string(ev.Error.Stage)
			}
			var outBytes int64
			for _, r := range ev.Results {
				outBytes += r.Size
			}
			outW, outH := 0, 0
			switch {
			case len(ev.Results) == 0:
			case ev.Task == schemas.TaskUpscale:
				outW, outH = 4*ev.Input.Width, 4*ev.Input.Height
			default:
				outW, outH = ev.Input.Width, ev.Input.Height
			}
			cache := 0
			started := time.Unix(0, 0).UTC()
			if ev.CacheHit {
				cache = 1
			} else {
				started = sec(ev.StartedAt)
			}
			dm := ev.DurationsMS
			want = append(want, []any{
				ev.JobID, ev.Tenant, ev.User, string(ev.Tier), string(ev.Task), ev.Model, ev.ModelVersion,
				string(ev.Status), code, msg, stage, cache,
				ev.Input.Size, ev.Input.ContentType, ev.Input.Width, ev.Input.Height,
				len(ev.Results), outBytes, outW, outH,
				sec(ev.SubmittedAt), started, sec(ev.FinishedAt),
				j.totalMS, j.queueWaitMS, j.processingMS,
				dm[schemas.StagePreprocess], dm[schemas.StageInference], dm[schemas.StagePostprocess], dm[schemas.StageStore],
				ev.TraceParent[3:35],
			})
		}
		got := queryRows(t, conn, `SELECT job_id, tenant, user_id, tier, task, model, model_version,
			status, error_code, error_message, error_stage, cache_hit,
			input_bytes, input_type, input_width, input_height, outputs, output_bytes, output_width, output_height,
			submitted_at, started_at, finished_at, total_ms, queue_wait_ms, processing_ms,
			preprocess_ms, inference_ms, postprocess_ms, store_ms, trace_id
			FROM jobs ORDER BY job_id`)
		ms := 0.0011 // durations are rebuilt from microsecond-truncated time differences
		tols := make([]float64, 31)
		for i := 23; i < 30; i++ {
			tols[i] = ms
		}
		requireRows(t, "jobs", want, got, tols...)
	})

	t.Run("stage_runs hold one row per stage attempt", func(t *testing.T) {
		var want [][]any
		for _, j := range d.jobs {
			for _, r := range j.runs {
				want = append(want, []any{
					sink.StageRunID(&r), r.JobID, r.Tenant, r.User, string(r.Stage), r.Worker, r.Attempt, r.BatchSize,
					r.Outcome, r.Error, sec(r.StartedAt), r.DurationMS, r.QueueWaitMS, r.TraceParent[3:35],
				})
			}
		}
		sort.Slice(want, func(a, b int) bool { return want[a][0].(string) < want[b][0].(string) })
		got := queryRows(t, conn, `SELECT run_id, job_id, tenant, user_id, stage, worker, attempt, batch_size,
			outcome, error, started_at, duration_ms, queue_wait_ms, trace_id FROM stage_runs ORDER BY run_id`)
		requireRows(t, "stage_runs", want, got)
	})

	t.Run("http_requests, audit_log and feedback hold one row per event", func(t *testing.T) {
		var want [][]any
		for _, h := range d.http {
			want = append(want, []any{h.ID, sec(h.Time), h.Method, h.Route, h.Status, h.DurationMS, h.Tenant, h.User, h.RequestBytes, h.ResponseBytes, h.SampleRate, 1 / h.SampleRate})
		}
		sort.Slice(want, func(a, b int) bool { return want[a][0].(string) < want[b][0].(string) })
		requireRows(t, "http_requests", want, queryRows(t, conn, `SELECT id, event_time, method, route, status, duration_ms,
			tenant, user_id, request_bytes, response_bytes, sample_rate, weight FROM http_requests ORDER BY id`))

		want = nil
		for _, a := range d.audit {
			want = append(want, []any{a.ID, sec(a.Time), a.Actor, a.Tenant, a.Action, a.Resource, a.IP, a.Result, a.RequestID, a.TraceID})
		}
		sort.Slice(want, func(a, b int) bool { return want[a][0].(string) < want[b][0].(string) })
		requireRows(t, "audit_log", want, queryRows(t, conn, `SELECT id, event_time, actor, tenant, action, resource, ip,
			result, request_id, trace_id FROM audit_log ORDER BY id`))

		want = nil
		for _, f := range d.feedback {
			want = append(want, []any{f.ID, f.JobID, f.Tenant, f.User, f.Rating, f.Comment, f.Model, f.ModelVersion, sec(f.Time)})
		}
		sort.Slice(want, func(a, b int) bool { return want[a][0].(string) < want[b][0].(string) })
		requireRows(t, "feedback", want, queryRows(t, conn, `SELECT id, job_id, tenant, user_id, rating, comment, model,
			model_version, event_time FROM feedback ORDER BY id`))
	})
}

// cookbookExpectations computes, from the dataset alone, what each cookbook query must
// return, with the tolerance of each column (the queries round).
func cookbookExpectations(d *dataset) map[string]func() ([][]any, []float64) {
	type mvKey struct {
		hour                 time.Time
		task, model, version string
	}
	return map[string]func() ([][]any, []float64){
		"error_rate_by_model_version": func() ([][]any, []float64) {
			type agg struct{ jobs, failed int }
			groups := map[mvKey]*agg{}
			for _, j := range d.jobs {
				k := mvKey{hour: hourOf(j.ev.SubmittedAt), model: j.ev.Model, version: j.ev.ModelVersion}
				if groups[k] == nil {
					groups[k] = &agg{}
				}
				groups[k].jobs++
				if j.ev.Status == schemas.StatusFailed {
					groups[k].failed++
				}
			}
			var rows [][]any
			for k, a := range groups {
				rows = append(rows, []any{k.hour, k.model, k.version, a.jobs, a.failed, float64(a.failed) / float64(a.jobs)})
			}
			sortRows(rows, 3)
			return rows, []float64{0, 0, 0, 0, 0, 0.00005 + 1e-9}
		},
		"hourly_overview": func() ([][]any, []float64) {
			type agg struct {
				req, ok, failed int
				lat, wait       []float64
			}
			groups := map[mvKey]*agg{}
			for _, j := range d.jobs {
				k := mvKey{hourOf(j.ev.SubmittedAt), string(j.ev.Task), j.ev.Model, j.ev.ModelVersion}
				if groups[k] == nil {
					groups[k] = &agg{}
				}
				a := groups[k]
				a.req++
				switch j.ev.Status {
				case schemas.StatusSucceeded:
					a.ok++
				case schemas.StatusFailed:
					a.failed++
				}
				a.lat = append(a.lat, j.totalMS)
				if !j.ev.CacheHit {
					a.wait = append(a.wait, j.queueWaitMS)
				}
			}
			var rows [][]any
			for k, a := range groups {
				rows = append(rows, []any{k.hour, k.task, k.model, k.version, a.req, a.ok, a.failed,
					interpolated(a.lat, 0.5), interpolated(a.lat, 0.95), interpolated(a.lat, 0.99),
					interpolated(a.wait, 0.5), interpolated(a.wait, 0.95)})
			}
			sortRows(rows, 4)
			// Queue waits are rebuilt from microsecond-truncated time differences.
			r, q := 1e-6, 0.0011
			return rows, []float64{0, 0, 0, 0, 0, 0, 0, r, r, r, q, q}
		},
		"daily_active_users": func() ([][]any, []float64) {
			type agg struct {
				users      map[[2]string]bool
				jobs, ok   int
				processing []float64
			}
			days := map[time.Time]*agg{}
			for _, j := range d.jobs {
				day := dayOf(j.ev.SubmittedAt)
				if days[day] == nil {
					days[day] = &agg{users: map[[2]string]bool{}}
				}
				a := days[day]
				a.users[[2]string{j.ev.Tenant, j.ev.User}] = true
				a.jobs++
				if j.ev.Status == schemas.StatusSucceeded {
					a.ok++
				}
				if !j.ev.CacheHit {
					a.processing = append(a.processing, j.processingMS)
				}
			}
			var rows [][]any
			for day, a := range days {
				rows = append(rows, []any{day, len(a.users), a.jobs, float64(a.jobs) / float64(len(a.users)),
					float64(a.ok) / float64(a.jobs), mean(a.processing)})
			}
			sortRows(rows, 1)
			return rows, []float64{0, 0, 0, 1e-9, 1e-9, 1e-6}
		},
		"slowest_tenants": func() ([][]any, []float64) {
			lat, wait := map[string][]float64{}, map[string][]float64{}
			for _, j := range d.jobs {
				if j.ev.Status == schemas.StatusSucceeded && !j.ev.CacheHit {
					lat[j.ev.Tenant] = append(lat[j.ev.Tenant], j.totalMS)
					wait[j.ev.Tenant] = append(wait[j.ev.Tenant], j.queueWaitMS)
				}
			}
			var rows [][]any
			for tenant, l := range lat {
				rows = append(rows, []any{tenant, len(l), interpolated(l, 0.5), interpolated(l, 0.95), mean(wait[tenant])})
			}
			sort.Slice(rows, func(a, b int) bool { return rows[a][3].(float64) > rows[b][3].(float64) })
			return rows, []float64{0, 0, 0.0511, 0.0511, 0.0511}
		},
		"p95_by_stage": func() ([][]any, []float64) {
			type agg struct {
				ok, retry, failed int
				dur, wait         []float64
			}
			stages := map[schemas.Stage]*agg{}
			for _, j := range d.jobs {
				for _, r := range j.runs {
					if stages[r.Stage] == nil {
						stages[r.Stage] = &agg{}
					}
					a := stages[r.Stage]
					switch r.Outcome {
					case "ok":
						a.ok++
						a.dur = append(a.dur, r.DurationMS)
					case "retry":
						a.retry++
					case "failed":
						a.failed++
					}
					a.wait = append(a.wait, r.QueueWaitMS)
				}
			}
			var rows [][]any
			for _, st := range processors.StageNames() {
				a := stages[st]
				rows = append(rows, []any{string(st), a.ok, a.retry, a.failed,
					interpolated(a.dur, 0.5), interpolated(a.dur, 0.95), interpolated(a.dur, 0.99), mean(a.wait)})
			}
			r := 0.000511
			return rows, []float64{0, 0, 0, 0, r, r, r, r}
		},
		"feedback_by_model_version": func() ([][]any, []float64) {
			type agg struct{ up, down int }
			groups := map[[2]string]*agg{}
			for _, f := range d.latestRatings() {
				k := [2]string{f.Model, f.ModelVersion}
				if groups[k] == nil {
					groups[k] = &agg{}
				}
				if f.Rating > 0 {
					groups[k].up++
				} else {
					groups[k].down++
				}
			}
			var rows [][]any
			for k, a := range groups {
				n := a.up + a.down
				rows = append(rows, []any{k[0], k[1], n, a.up, a.down, float64(a.up-a.down) / float64(n), float64(a.up) / float64(n)})
			}
			sortRows(rows, 2)
			r := 0.00005 + 1e-9
			return rows, []float64{0, 0, 0, 0, 0, r, r}
		},
		"canary_vs_stable": func() ([][]any, []float64) {
			type agg struct {
				jobs, failed int
				lat          []float64
				up, n        int
			}
			groups := map[[2]string]*agg{}
			for _, j := range d.jobs {
				k := [2]string{j.ev.Model, j.ev.ModelVersion}
				if groups[k] == nil {
					groups[k] = &agg{}
				}
				a := groups[k]
				a.jobs++
				if j.ev.Status == schemas.StatusFailed {
					a.failed++
				}
				if j.ev.Status == schemas.StatusSucceeded {
					a.lat = append(a.lat, j.totalMS)
				}
			}
			for _, f := range d.latestRatings() {
				a := groups[[2]string{f.Model, f.ModelVersion}]
				a.n++
				a.up += f.Rating
			}
			stable := map[string]string{}
			for k, a := range groups {
				cur, ok := stable[k[0]]
				if !ok || a.jobs > groups[[2]string{k[0], cur}].jobs || a.jobs == groups[[2]string{k[0], cur}].jobs && k[1] > cur {
					stable[k[0]] = k[1]
				}
			}
			var rows [][]any
			for k, a := range groups {
				role := "canary"
				if stable[k[0]] == k[1] {
					role = "stable"
				}
				score := 0.0
				if a.n > 0 {
					score = float64(a.up) / float64(a.n)
				}
				rows = append(rows, []any{k[0], k[1], role, a.jobs, a.failed, float64(a.failed) / float64(a.jobs),
					interpolated(a.lat, 0.5), interpolated(a.lat, 0.95), a.n, score})
			}
			sort.Slice(rows, func(a, b int) bool {
				if rows[a][0] != rows[b][0] {
					return rows[a][0].(string) < rows[b][0].(string)
				}
				if rows[a][2] != rows[b][2] {
					return rows[a][2].(string) > rows[b][2].(string)
				}
				return rows[a][1].(string) < rows[b][1].(string)
			})
			r := 0.00005 + 1e-9
			return rows, []float64{0, 0, 0, 0, 0, r, 0.0511, 0.0511, 0, r}
		},
		"http_errors_by_route": func() ([][]any, []float64) {
			type agg struct {
				w, w5, w4 float64
				dur       []float64
			}
			routes := map[string]*agg{}
			for _, h := range d.http {
				if routes[h.Route] == nil {
					routes[h.Route] = &agg{}
				}
				a := routes[h.Route]
				w := 1 / h.SampleRate
				a.w += w
				if h.Status >= 500 {
					a.w5 += w
				} else if h.Status >= 400 {
					a.w4 += w
				}
				a.dur = append(a.dur, h.DurationMS)
			}
			var rows [][]any
			for route, a := range routes {
				rows = append(rows, []any{route, math.Round(a.w), a.w5 / a.w, a.w4 / a.w, interpolated(a.dur, 0.5), interpolated(a.dur, 0.95)})
			}
			sort.Slice(rows, func(a, b int) bool {
				if rows[a][1] != rows[b][1] {
					return rows[a][1].(float64) > rows[b][1].(float64)
				}
				return rows[a][0].(string) < rows[b][0].(string)
			})
			r := 0.00005 + 1e-9
			return rows, []float64{0, 0, r, r, 0.000511, 0.000511}
		},
	}
}

// sortRows orders rows by their first n columns (times, strings or numbers).
func sortRows(rows [][]any, n int) {
	sort.Slice(rows, func(a, b int) bool {
		for i := 0; i < n; i++ {
			x, y := normalize(rows[a][i]), normalize(rows[b][i])
			switch xv := x.(type) {
			case time.Time:
				if yv := y.(time.Time); !xv.Equal(yv) {
					return xv.Before(yv)
				}
			case string:
				if yv := y.(string); xv != yv {
					return xv < yv
				}
			case float64:
				if yv := y.(float64); xv != yv {
					return xv < yv
				}
			}
		}
		return false
	})
}

func TestCookbookQueriesReturnWhatTheJobsImply(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) { testCookbook(t, e) })
	}
}

func testCookbook(t *testing.T, e engine) {
	d := newDataset(time.Now().UTC(), 600, 2)
	in := ingestInto(t, d, e.config(t))
	// Every event of a third of the jobs arrives a second time under a new message id,
	// so the stream cannot de-duplicate it: the answers must not change.
	var again []streams.Output
	for _, o := range (&dataset{now: d.now, jobs: d.jobs[:200]}).outputs(t) {
		o.MsgID += ":again"
		again = append(again, o)
	}
	publish(t, in.srv, again...)
	waitWritten(t, in.sink, in.sent+uint64(len(again)), 60*time.Second)
	// A loaded machine may also redeliver a batch the sink already committed: those are
	// recognised as stored too, so there can be more duplicates than repeated events.
	require.GreaterOrEqual(t, in.sink.Stats().Duplicates, uint64(len(again)), "every repeated event was recognised as stored")

	queries, err := sink.Cookbook()
	require.NoError(t, err)
	expect := cookbookExpectations(d)
	require.Len(t, queries, len(expect), "every cookbook query needs an expectation here")
	for _, q := range queries {
		t.Run(q.Name, func(t *testing.T) {
			fn, ok := expect[q.Name]
			require.True(t, ok, "no expectation for cookbook query %s", q.Name)
			require.NotEmpty(t, q.Title)
			want, tols := fn()
			require.NotEmpty(t, want)
			requireRows(t, q.Name, want, e.rows(t, in.cfg, q.SQL), tols...)
		})
	}
	t.Run("raw tables and rollups hold no duplicate even without FINAL", func(t *testing.T) {
		require.Equal(t, [][]any{{float64(len(d.jobs))}}, e.rows(t, in.cfg, "SELECT count() FROM jobs"))
		require.Equal(t, [][]any{{float64(d.stageRuns())}}, e.rows(t, in.cfg, "SELECT count() FROM stage_runs"))
		require.Equal(t, [][]any{{float64(len(d.jobs))}}, e.rows(t, in.cfg, "SELECT sum(requests) FROM jobs_hourly"))
	})
}
