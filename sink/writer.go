package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// writer stores rows in ClickHouse and applies erasure requests. Its write is
// idempotent: running it again with the same input (after an error, or after a crash
// between commit and ack) inserts nothing twice. Safe for concurrent use.
type writer struct {
	conn   conn
	erased *erasureSet
	stats  *counters
	now    func() time.Time

	// rollupMu is held shared by inserts into jobs and exclusively while an erasure
	// recomputes the rollups' periods.
	rollupMu sync.RWMutex
}

// rowError blames one message of a batch for a failed insert; the sink dead-letters
// that message and writes the rest.
type rowError struct {
	msg int
	err error
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// insertOrder is the order in which a batch's tables are written.
var insertOrder = []*table{tableJobs, tableStageRuns, tableHTTP, tableFeedback, tableReplay, tableAudit, tableErasures}

// write drops rows of erased users, skips rows whose key is already stored, inserts the
// rest table by table, then applies the erasure requests of the batch. msgOf maps a
// block (by position in blocks) to its message, for rowError.
func (w *writer) write(ctx context.Context, blocks []*block, msgOf []int, erasures []*schemas.ErasureRequest) error {
	if err := w.erased.refresh(ctx, w.conn, w.now()); err != nil {
		return err
	}
	for _, e := range erasures {
		w.erased.add(e.Tenant, e.User, e.RequestedAt)
	}
	n := map[*table]int{}
	for _, b := range blocks {
		n[b.t] += b.rows()
	}
	byTable := make(map[*table][]ref, len(n))
	seen := make(map[*table]map[string]struct{}, len(n))
	for t, rows := range n {
		byTable[t] = make([]ref, 0, rows)
		seen[t] = make(map[string]struct{}, rows)
	}
	for bi, b := range blocks {
		refs, keys := byTable[b.t], seen[b.t]
		for i := range b.meta {
			m := &b.meta[i]
			if !m.keep && m.user != "" && w.erased.covers(m.tenant, m.user, m.at) {
				w.stats.erasedRows.Add(1)
				continue
			}
			if _, dup := keys[m.key]; dup {
				w.stats.duplicates.Add(1)
				continue
			}
			keys[m.key] = struct{}{}
			refs = append(refs, ref{blk: int32(bi), row: int32(i)})
		}
		byTable[b.t] = refs
	}
	for _, t := range insertOrder {
		refs := byTable[t]
		if len(refs) == 0 {
			continue
		}
		keys := make([]string, len(refs))
		var first, last time.Time
		tenants := map[string]bool{}
		for j, r := range refs {
			m := &blocks[r.blk].meta[r.row]
			keys[j] = m.key
			if len(tenants) <= maxLookupTenants {
				tenants[m.tenant] = true
			}
			if j == 0 || m.at.Before(first) {
				first = m.at
			}
			if j == 0 || m.at.After(last) {
				last = m.at
			}
		}
		stored, err := w.existing(ctx, t, keys, first, last, tenants)
		if err != nil {
			return err
		}
		fresh := refs
		if len(stored) > 0 {
			fresh = make([]ref, 0, len(refs))
			for _, r := range refs {
				if stored[blocks[r.blk].meta[r.row].key] {
					w.stats.duplicates.Add(1)
					continue
				}
				fresh = append(fresh, r)
			}
		}
		if err := w.insert(ctx, t, blocks, fresh, msgOf); err != nil {
			return err
		}
		w.stats.addRows(t.name, len(fresh))
	}
	if len(erasures) > 0 {
		if err := w.applyErasures(ctx, erasures); err != nil {
			return err
		}
		w.stats.erasures.Add(uint64(len(erasures)))
	}
	return nil
}

// maxLookupTenants is the most tenants a stored-id lookup names; a batch of more
// tenants looks up by time alone.
const maxLookupTenants = 64

// lookupMargin widens the stored-id lookup's time range each side. A row's id fixes
// its event time (a redelivery carries the same row), so the margin only covers a
// producer that sent one id with two times (two workers racing on one delivery).
const lookupMargin = time.Hour

// existing returns which keys t already holds, in one query that uses the sorting key
// (toDate(time), tenant, id): the rows' times, first to last with lookupMargin each
// side, bound the days and the rows read, and the batch's tenants the ranges within a
// day. A duplicate has the same time and tenant as the stored row, so nothing is
// missed; what is read is the batch's own time window, not whole days of ids.
func (w *writer) existing(ctx context.Context, t *table, keys []string, first, last time.Time, tenants map[string]bool) (map[string]bool, error) {
	var conds []string
	if t.timeCol != "" {
		from := max(first.Add(-lookupMargin).Unix(), 0) // an unknown time is 1970-01-01
		to := max(last.Add(lookupMargin).Unix(), 0)
		conds = append(conds,
			fmt.Sprintf("toDate(%s) BETWEEN toDate(toDateTime(%d, 'UTC')) AND toDate(toDateTime(%d, 'UTC'))", t.timeCol, from, to),
			fmt.Sprintf("%s BETWEEN toDateTime(%d, 'UTC') AND toDateTime(%d, 'UTC')", t.timeCol, from, to))
	}
	if len(tenants) > 0 && len(tenants) <= maxLookupTenants {
		list := make([]string, 0, len(tenants))
		for tn := range tenants {
			list = append(list, quote(tn))
		}
		slices.Sort(list)
		conds = append(conds, "tenant IN ("+strings.Join(list, ", ")+")")
	}
	out, err := w.conn.Stored(ctx, t.name, t.key, keys, strings.Join(conds, " AND "))
	if err != nil {
		return nil, fmt.Errorf("sink: look up stored ids in %s: %w", t.name, err)
	}
	return out, nil
}

// insert sends the rows refs of blocks to t in one INSERT with an explicit column
// list, column by column.
func (w *writer) insert(ctx context.Context, t *table, blocks []*block, refs []ref, msgOf []int) error {
	if len(refs) == 0 {
		return nil
	}
	if t == tableJobs {
		w.rollupMu.RLock()
		defer w.rollupMu.RUnlock()
	}
	cols := getCols(t)
	defer putCols(t, cols)
	cols.gather(t, blocks, refs)
	if t == tableErasures {
		now := w.now().UTC().Truncate(time.Second)
		applied := cols.tm[len(t.cols)-1] // applied_at
		for i := range applied {
			applied[i] = now
		}
	}
	err := w.conn.InsertColumns(ctx, t.name, t.columns, cols.data, len(refs))
	var bad *badRowError
	if errors.As(err, &bad) {
		r := refs[bad.Row]
		return &rowError{msg: msgOf[r.blk], err: fmt.Errorf("sink: row %q does not fit table %s: %w", blocks[r.blk].meta[r.row].key, t.name, bad.Err)}
	}
	if err != nil {
		return fmt.Errorf("sink: insert %d rows into %s: %w", len(refs), t.name, err)
	}
	return nil
}

// applyErasures recomputes the rollup periods that hold rows of each request's user
// whose event time is at or before the request, without those rows, then deletes the
// rows from every table with personal data. ALTER TABLE … DELETE is a mutation: the
// server records it at once and rewrites the parts in the background. audit_log keeps
// the erasure records themselves. Rerunning is harmless.
func (w *writer) applyErasures(ctx context.Context, reqs []*schemas.ErasureRequest) error {
	userRows := func(t *table) (string, []any) {
		var conds []string
		var args []any
		for _, r := range reqs {
			conds = append(conds, fmt.Sprintf("(tenant = ? AND %s = ? AND %s <= toDateTime(?))", t.userCol, t.timeCol))
			args = append(args, r.Tenant, r.User, r.RequestedAt.Unix())
		}
		return strings.Join(conds, " OR "), args
	}
	// The periods to recompute are read before the delete: afterwards the rows that
	// name them may already be gone.
	periods := make([][]uint32, len(rollups))
	for i, r := range rollups {
		where, args := userRows(tableJobs)
		p, err := w.periods(ctx, "SELECT DISTINCT toUInt32(toDateTime("+r.period+", 'UTC')) FROM jobs WHERE "+where, args)
		if err != nil {
			return fmt.Errorf("sink: find the %s periods of the erased users: %w", r.table, err)
		}
		periods[i] = p
	}
	// The rollups are recomputed before the rows are deleted: a request that fails
	// half-way is retried, and a retry finds the periods only while the user's jobs
	// are still there. (The recompute leaves the user's rows out by itself.) The lock
	// keeps this process's inserts into jobs, whose materialized views add to the
	// rollups, out of the window between clearing a period and computing it again.
	w.rollupMu.Lock()
	for i, r := range rollups {
		if len(periods[i]) == 0 {
			continue
		}
		if err := w.recompute(ctx, r, periods[i], userRows); err != nil {
			w.rollupMu.Unlock()
			return err
		}
	}
	w.rollupMu.Unlock()
	for _, t := range erasableTables {
		where, args := userRows(t)
		if t == tableAudit {
			where = "action != '" + schemas.ActionErasure + "' AND (" + where + ")"
		}
		if err := w.conn.Exec(ctx, "ALTER TABLE "+t.name+" DELETE WHERE "+where, args...); err != nil {
			return fmt.Errorf("sink: erase from %s: %w", t.name, err)
		}
	}
	return nil
}

// rollup is a materialized rollup of jobs (migrations/0002_rollups.sql): its state
// table, the period column, the expression of jobs that gives a row's period, and the
// SELECT of the state columns for a set of periods, the view's own SELECT with a WHERE.
// (toDate names its time zone: on 18.16 a FINAL query may not compute an expression
// that is also in the sorting key, toDate(submitted_at), under the same name.)
// Their uniqExact states hold job and user ids, so erasure recomputes every period an
// erased user had jobs in from the rows that remain.
type rollup struct {
	table, column, period, sel string
}

var rollups = []rollup{
	{
		table: "jobs_hourly_state", column: "hour", period: "toStartOfHour(submitted_at)",
		sel: `SELECT
    toStartOfHour(submitted_at) AS hour,
    task,
    model,
    model_version,
    uniqExactState(job_id) AS requests,
    uniqExactIfState(job_id, toUInt8(status = 'succeeded')) AS successes,
    uniqExactIfState(job_id, toUInt8(status = 'failed')) AS failures,
    quantilesState(0.5, 0.95, 0.99)(total_ms) AS latency_ms,
    quantilesIfState(0.5, 0.95, 0.99)(queue_wait_ms, toUInt8(cache_hit = 0)) AS queue_wait_ms
FROM jobs FINAL
WHERE %s
GROUP BY hour, task, model, model_version`,
	},
	{
		table: "jobs_daily_state", column: "day", period: "toDate(submitted_at, 'UTC')",
		sel: `SELECT
    toDate(submitted_at, 'UTC') AS day,
    tenant,
    uniqExactState(job_id) AS requests,
    uniqExactIfState(job_id, toUInt8(status = 'succeeded')) AS successes,
    uniqExactState(tenant, user_id) AS active_users,
    avgIfState(processing_ms, toUInt8(cache_hit = 0)) AS processing_ms
FROM jobs FINAL
WHERE %s
GROUP BY day, tenant`,
	},
}

// recompute replaces the rollup's rows of the given periods (Unix seconds of their
// start) with states computed from the jobs of everyone but the erased users, whose
// rows are deleted afterwards (or are being deleted, on a rerun). The DELETE mutation only
// touches parts that exist when it is created, so the rows inserted next survive it.
func (w *writer) recompute(ctx context.Context, r rollup, periods []uint32, userRows func(*table) (string, []any)) error {
	list := make([]string, len(periods))
	for i, p := range periods {
		list[i] = fmt.Sprint(p)
	}
	in := strings.Join(list, ", ")
	if err := w.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DELETE WHERE toUInt32(toDateTime(%s, 'UTC')) IN (%s)", r.table, r.column, in)); err != nil {
		return fmt.Errorf("sink: clear the erased periods of %s: %w", r.table, err)
	}
	erased, args := userRows(tableJobs)
	where := fmt.Sprintf("toUInt32(toDateTime(%s, 'UTC')) IN (%s) AND NOT (%s)", r.period, in, erased)
	if err := w.conn.Exec(ctx, "INSERT INTO "+r.table+" "+fmt.Sprintf(r.sel, where), args...); err != nil {
		return fmt.Errorf("sink: recompute the erased periods of %s: %w", r.table, err)
	}
	return nil
}

// periods reads one UInt32 column.
func (w *writer) periods(ctx context.Context, q string, args []any) ([]uint32, error) {
	rs, err := w.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for rs.Next() {
		var p uint32
		if err := rs.Scan(&p); err != nil {
			_ = rs.Close()
			return nil, err
		}
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		_ = rs.Close()
		return nil, err
	}
	return out, rs.Close()
}

// erasureSet remembers applied erasure requests so rows of an erased user that arrive
// after the delete (still queued in another stream) are dropped instead of written.
// Safe for concurrent use.
type erasureSet struct {
	mu     sync.RWMutex
	until  map[string]time.Time // tenant\x00user -> latest requested_at
	loaded time.Time
	every  time.Duration
}

func newErasureSet() *erasureSet {
	return &erasureSet{until: map[string]time.Time{}, every: 30 * time.Second}
}

func erasureKey(tenant, user string) string { return tenant + "\x00" + user }

func (e *erasureSet) add(tenant, user string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := erasureKey(tenant, user)
	if at.After(e.until[k]) {
		e.until[k] = at
	}
}

// covers reports whether a row of the user with event time at falls under an erasure.
func (e *erasureSet) covers(tenant, user string, at time.Time) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	until, ok := e.until[erasureKey(tenant, user)]
	// Whole seconds, as the DateTime columns the ALTER … DELETE compares.
	return ok && !at.Truncate(time.Second).After(until.Truncate(time.Second))
}

// refresh reloads the applied requests, so requests applied by other sink replicas
// take effect here too; it does nothing when the last load is recent.
func (e *erasureSet) refresh(ctx context.Context, conn conn, now time.Time) error {
	e.mu.RLock()
	fresh := now.Sub(e.loaded) < e.every
	e.mu.RUnlock()
	if fresh {
		return nil
	}
	rs, err := conn.Query(ctx, "SELECT tenant, user_id, max(requested_at) FROM erasures GROUP BY tenant, user_id")
	if err != nil {
		return fmt.Errorf("sink: load erasure requests: %w", err)
	}
	loaded := map[string]time.Time{}
	for rs.Next() {
		var tenant, user string
		var at time.Time
		if err := rs.Scan(&tenant, &user, &at); err != nil {
			rs.Close()
			return fmt.Errorf("sink: load erasure requests: %w", err)
		}
		loaded[erasureKey(tenant, user)] = at
	}
	if err := closeRows(rs); err != nil {
		return fmt.Errorf("sink: load erasure requests: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, at := range loaded {
		if at.After(e.until[k]) {
			e.until[k] = at
		}
	}
	e.loaded = now
	return nil
}
