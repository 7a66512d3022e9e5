// Package erasure is the GDPR erasure: the Registry of every place that can hold a
// user's data, with how to find one user's entries there, and the Eraser that walks it.
package erasure

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Eraser removes everything the service holds about one user of one tenant (a GDPR
// erasure): objects, job records, cache entries, KV state, sessions, API keys and
// stream messages, then asks the ClickHouse sink to delete the user's rows. It walks a
// Registry (DefaultRegistry), which lists every place that can hold a user's data and
// how to find one user's entries there. Safe for concurrent use; running it twice for
// the same user is harmless.
//
// The order of an erasure:
//  1. Sessions are revoked (their access tokens die with the family's deny entry, which
//     names no one) and the user record and refresh families are purged: no new session
//     or job starts.
//  2. The footprint is found: the user's jobs (the job index plus a scan of the job
//     records, so jobs submitted by upstream publishers count too), the records, the
//     API key ids and the uploads the jobs were submitted with.
//  3. Objects are purged (blob.Store.Purge, which on the JetStream object store also
//     removes the delete marker that names the key).
//  4. Every other KV bucket of the registry is cleaned: one stream purge per key
//     pattern, which leaves not even a delete marker; job records are purged through
//     the KV first, so that progress watchers see the deletion.
//  5. Stream messages: subjects carry tier, task, tenant or stage but not the user, so
//     each stream is read once (an ordered consumer; a direct read for work-queue
//     streams, which allow no second consumer) and every message whose JSON body names
//     the user or one of the user's jobs is deleted with SecureDeleteMsg, which
//     overwrites the stored bytes. A batch message (telemetry and audit rows of many
//     users, batched at the producer) that also holds other users' rows is first
//     published again without the user's rows, so no one else's rows are lost.
//     Per-user subjects would allow a filtered purge instead, at the price of a
//     subject per user in every stream; with erasure being rare, the scan is the
//     better trade.
//  6. The erasure itself stays on record: the ErasureRequest published on
//     studio.audit.erasure (never scanned) is what the sink keeps in audit_log.
//
// Objects and job state go before the index and records that lead to them, so an
// erasure that fails half-way finds everything again when it is run again. Jobs still
// queued or running when Erase runs are listed in the report's InFlight: a stage may
// write their results afterwards, so run Erase again once they have ended (deleting the
// user first makes sure no new job starts).
type Eraser struct {
	js     jetstream.JetStream
	blobs  blob.Store
	pub    streams.Publisher
	reg    Registry
	jobs   *jobs.Store
	tokens *auth.Tokens
	index  *jobs.Index
	keys   *auth.APIKeys
	jobsKV jetstream.KeyValue
	now    func() time.Time

	// afterRepublish, when set (tests), runs after a batch was published again and
	// before the original is deleted; an error stops the erasure there.
	afterRepublish func() error
}

// NewEraser opens the stores an erasure touches; blobs is the object storage in use
// (natsobj.ObjectStore or S3, wrapped or not).
func NewEraser(ctx context.Context, js jetstream.JetStream, blobs blob.Store) (*Eraser, error) {
	e := &Eraser{js: js, blobs: blobs, pub: streams.JSPublisher{JS: js}, reg: DefaultRegistry(), now: time.Now}
	var err error
	if e.jobs, err = jobs.Open(ctx, js); err != nil {
		return nil, err
	}
	if e.tokens, err = auth.OpenTokens(ctx, js); err != nil {
		return nil, err
	}
	if e.index, err = jobs.OpenIndex(ctx, js); err != nil {
		return nil, err
	}
	if e.keys, err = auth.OpenAPIKeys(ctx, js); err != nil {
		return nil, err
	}
	if e.jobsKV, err = streams.BindKV(ctx, js, jobs.Bucket); err != nil {
		return nil, err
	}
	return e, nil
}

// EraseOption configures one erasure.
type EraseOption func(*eraseOptions)

type eraseOptions struct{ requestedBy string }

// WithRequestedBy names who asked for the erasure (an operator, or the user); it is
// kept in the audit trail.
func WithRequestedBy(actor string) EraseOption {
	return func(o *eraseOptions) { o.requestedBy = actor }
}

// ErasureReport lists what an erasure removed.
type ErasureReport struct {
	// RequestID is the id of the ErasureRequest sent to the sink (and its audit record).
	RequestID   string `json:"request_id"`
	Tenant      string `json:"tenant"`
	User        string `json:"user"`
	RequestedBy string `json:"requested_by,omitempty"`
	// Jobs are the user's job ids that were found.
	Jobs []string `json:"jobs"`
	// InFlight are jobs that were not final: erase again after they end.
	InFlight []string `json:"in_flight,omitempty"`
	// Objects are the deleted object keys.
	Objects []string `json:"objects"`
	// KVKeys are the removed entries, as bucket/key.
	KVKeys []string `json:"kv_keys"`
	// APIKeys are the ids of the user's deleted API keys.
	APIKeys []string `json:"api_keys,omitempty"`
	// Sessions is how many refresh-token families were revoked and removed.
	Sessions int `json:"sessions"`
	// Messages counts deleted stream messages per stream.
	Messages map[string]int `json:"messages"`
	// Rewritten counts, per stream, the deleted messages that were batches holding
	// other users' rows too: each was published again without the user's rows.
	Rewritten map[string]int `json:"rewritten,omitempty"`
}

// Erase removes the user's data and returns what was removed. On error the report
// holds what was done so far, and Erase can simply be run again.
func (e *Eraser) Erase(ctx context.Context, tenant, user string, opts ...EraseOption) (*ErasureReport, error) {
	var o eraseOptions
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := schemas.UserKey(tenant, user); err != nil {
		return nil, fmt.Errorf("erasure: %w", err)
	}
	rep := &ErasureReport{Tenant: tenant, User: user, RequestedBy: o.requestedBy, Jobs: []string{}, Objects: []string{}, KVKeys: []string{}, Messages: map[string]int{}}
	requestedAt := e.now().UTC()
	f := &Footprint{Tenant: tenant, User: user, Jobs: map[string]bool{}}

	// 1. No new sessions or jobs.
	fams, err := e.tokens.Families(ctx, tenant, user)
	if err != nil {
		return rep, err
	}
	for _, fam := range fams {
		if err := e.tokens.Deny(ctx, auth.DenyKeyFamily(fam.ID), fam.ExpiresAt.Add(auth.Leeway)); err != nil {
			return rep, err
		}
	}
	rep.Sessions = len(fams)
	early := map[string]bool{auth.BucketUsers: true, auth.BucketRefresh: true}
	for _, kv := range e.reg.KV {
		if early[kv.Bucket] {
			if err := e.eraseKV(ctx, kv, f, rep); err != nil {
				return rep, err
			}
		}
	}

	// 2. The footprint.
	if err := e.discover(ctx, f); err != nil {
		return rep, err
	}
	rep.Jobs = sortedKeys(f.Jobs)
	for _, rec := range f.Records {
		if !rec.Status.Final() {
			rep.InFlight = append(rep.InFlight, rec.ID)
		}
	}
	sort.Strings(rep.InFlight)

	// 3. No key of the user's acts any more (keys first, then their usage counters,
	// which are found by key id).
	keysFirst := []string{auth.BucketKeyUsage, auth.BucketAPIKeys}
	for _, b := range keysFirst {
		for _, kv := range e.reg.KV {
			if kv.Bucket == b && kv.NoUserData == "" {
				if err := e.eraseKV(ctx, kv, f, rep); err != nil {
					return rep, err
				}
			}
		}
		early[b] = true
	}
	rep.APIKeys = append(rep.APIKeys, f.APIKeys...)
	sort.Strings(rep.APIKeys)

	// 4. Stream messages, then objects, while the job records and the index that lead
	// to them still exist: an erasure that fails from here on finds everything again
	// when it is run again.
	m := messageMatcher{tenant: tenant, user: user, jobs: f.Jobs}
	for _, sd := range e.reg.Streams {
		filter := ">"
		if sd.Filter != nil {
			filter = sd.Filter(f)
		}
		n, rewritten, err := e.eraseMessages(ctx, sd.Stream, filter, sd.Keep, m)
		if n > 0 {
			rep.Messages[sd.Stream] = n
		}
		if rewritten > 0 {
			if rep.Rewritten == nil {
				rep.Rewritten = map[string]int{}
			}
			rep.Rewritten[sd.Stream] = rewritten
		}
		if err != nil {
			return rep, err
		}
	}
	if err := e.eraseObjects(ctx, f, rep); err != nil {
		return rep, err
	}

	// 5. The other KV buckets: records, index, cache, limits, idempotency claims.
	for _, kv := range e.reg.KV {
		if early[kv.Bucket] || kv.NoUserData != "" {
			continue
		}
		if err := e.eraseKV(ctx, kv, f, rep); err != nil {
			return rep, err
		}
	}

	// 6. Ask the sink to delete the user's analytics rows; this is the erasure's audit record.
	req := schemas.ErasureRequest{
		Schema: schemas.SchemaErasure, ID: ulid.Make().String(), Tenant: tenant, User: user,
		RequestedAt: requestedAt, RequestedBy: o.requestedBy,
	}
	data, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	if err := e.pub.Publish(ctx, streams.Output{Subject: schemas.SubjectErasure, MsgID: "erasure:" + req.ID, Data: data}); err != nil {
		return rep, fmt.Errorf("erasure: queue the analytics erasure: %w", err)
	}
	rep.RequestID = req.ID
	sort.Strings(rep.Objects)
	sort.Strings(rep.KVKeys)
	return rep, nil
}

// discover fills the footprint: the user's jobs and records, API keys and uploads.
func (e *Eraser) discover(ctx context.Context, f *Footprint) error {
	ids, err := e.index.List(ctx, f.Tenant, f.User)
	if err != nil {
		return err
	}
	for _, id := range ids {
		f.Jobs[id] = true
	}
	entries, err := e.index.Entries(ctx, f.Tenant, f.User)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if en.StyleUpload != "" {
			f.Uploads = append(f.Uploads, en.StyleUpload)
		}
		if en.Upload != "" {
			f.Uploads = append(f.Uploads, en.Upload)
		}
	}
	err = streams.ScanJSON(ctx, e.jobsKV, ">", func(_ string, rec schemas.JobRecord) error {
		if rec.Tenant == f.Tenant && rec.User == f.User || f.Jobs[rec.ID] {
			f.Jobs[rec.ID] = true
			f.Records = append(f.Records, &rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if f.APIKeys, err = e.keys.OwnedBy(ctx, f.Tenant, f.User); err != nil {
		return err
	}
	return nil
}

// eraseObjects purges every object the registry's object rows name for f.
func (e *Eraser) eraseObjects(ctx context.Context, f *Footprint, rep *ErasureReport) error {
	var prefixes, exact []string
	for _, od := range e.reg.Objects {
		if od.Prefixes != nil {
			prefixes = append(prefixes, od.Prefixes(f)...)
		}
		if od.Keys != nil {
			exact = append(exact, od.Keys(f)...)
		}
	}
	keys, err := e.blobs.Keys(ctx, prefixes...)
	if err != nil {
		return fmt.Errorf("erasure: list the user's objects: %w", err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	for _, k := range exact {
		if seen[k] {
			continue
		}
		if _, err := e.blobs.Stat(ctx, k); errors.Is(err, blob.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("erasure: %w", err)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := e.blobs.Purge(ctx, k); err != nil {
			return fmt.Errorf("erasure: %w", err)
		}
		rep.Objects = append(rep.Objects, k)
	}
	return nil
}

// eraseKV removes the user's keys of one bucket, recording each in the report.
func (e *Eraser) eraseKV(ctx context.Context, kv KVData, f *Footprint, rep *ErasureReport) error {
	bucket, err := e.js.KeyValue(ctx, kv.Bucket)
	if kv.Legacy && errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("erasure: open KV bucket %s: %w", kv.Bucket, err)
	}
	var filters []string
	if kv.Filters != nil {
		filters = kv.Filters(f)
	}
	if kv.Scan != nil {
		err := streams.ScanJSON(ctx, bucket, kv.ScanFilter(f), func(key string, v json.RawMessage) error {
			if kv.Scan(f, v) {
				filters = append(filters, key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("erasure: scan %s: %w", kv.Bucket, err)
		}
	}
	for _, filter := range filters {
		if err := e.purgeKV(ctx, bucket, kv.Watched, filter, rep); err != nil {
			return err
		}
	}
	return nil
}

// purgeKV removes every key of bucket matching filter, recording each in the report.
func (e *Eraser) purgeKV(ctx context.Context, kv jetstream.KeyValue, watched bool, filter string, rep *ErasureReport) error {
	name := kv.Bucket()
	s, err := e.js.Stream(ctx, streams.KVStream(name))
	if err != nil {
		return fmt.Errorf("erasure: stream of KV bucket %s: %w", name, err)
	}
	subject := streams.KVSubject(name, filter)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return fmt.Errorf("erasure: inspect %s: %w", subject, err)
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, "$KV."+name+".")
		if watched {
			// Watchers (progress streams) see the purge marker; the stream purge below
			// then removes it too.
			if err := kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("erasure: purge %s/%s: %w", name, key, err)
			}
		}
		rep.KVKeys = append(rep.KVKeys, name+"/"+key)
	}
	return streams.PurgeSubject(ctx, e.js, streams.KVStream(name), subject)
}

// messageMatcher recognises a user's messages by their JSON body: events, results,
// telemetry, feedback and DLQ copies name the tenant and user (or the job), audit events
// the actor or the resource.
type messageMatcher struct {
	tenant, user string
	jobs         map[string]bool
}

// messageNames is what messageMatcher reads of a message or of one row of a batch.
type messageNames struct {
	Tenant   string `json:"tenant"`
	User     string `json:"user"`
	Actor    string `json:"actor"`
	JobID    string `json:"job_id"`
	Resource string `json:"resource"`
}

// filter decides what happens to a message: erase reports whether it names the user,
// and rest, when not nil, is the message without the user's rows. A batch of rows of
// many users (schemas.TelemetryBatch, schemas.AuditBatch: stage runs, HTTP requests
// and audit events batched at the producer) loses only the user's rows: the other rows
// are other users' telemetry, which a sink not yet past the message, or one replaying
// the stream, must still find. rest is the batch with those rows and every other field
// as they were; it is nil when the whole message is the user's (a single event, or a
// batch of the user's rows only).
func (m messageMatcher) filter(data []byte) (erase bool, rest []byte) {
	var b struct {
		messageNames
		StageRuns    []json.RawMessage `json:"stage_runs"`
		HTTPRequests []json.RawMessage `json:"http_requests"`
		Events       []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(data, &b) != nil {
		return false, nil
	}
	if m.matchNames(b.messageNames) {
		return true, nil
	}
	fields := []struct {
		name string
		rows []json.RawMessage
	}{{"stage_runs", b.StageRuns}, {"http_requests", b.HTTPRequests}, {"events", b.Events}}
	removed, kept := 0, 0
	for i, f := range fields {
		keep := make([]json.RawMessage, 0, len(f.rows))
		for _, r := range f.rows {
			var names messageNames
			if json.Unmarshal(r, &names) == nil && m.matchNames(names) {
				removed++
				continue
			}
			keep = append(keep, r)
		}
		fields[i].rows = keep
		kept += len(keep)
	}
	if removed == 0 {
		return false, nil
	}
	if kept == 0 {
		return true, nil
	}
	// The row fields are replaced; every other field stays as it was.
	var env map[string]json.RawMessage
	if json.Unmarshal(data, &env) != nil {
		return true, nil // cannot happen: data parsed above
	}
	for _, f := range fields {
		if _, ok := env[f.name]; !ok {
			continue
		}
		rows, err := json.Marshal(f.rows)
		if err != nil {
			return true, nil
		}
		env[f.name] = rows
	}
	out, err := json.Marshal(env)
	if err != nil {
		return true, nil
	}
	return true, out
}

func (m messageMatcher) matchNames(b messageNames) bool {
	if b.JobID != "" && m.jobs[b.JobID] || b.Resource == "user/"+m.tenant+"/"+m.user {
		return true // the resource of a login names tenant and user
	}
	if b.Tenant != m.tenant {
		return false
	}
	if b.User == m.user || b.Actor == m.user || b.Resource == "user/"+m.user {
		return true
	}
	return m.jobs[resourceJob(b.Resource)]
}

// resourceJob returns the job id an audit resource names: "job/<id>", or an object
// key of a job, "inputs|results/<tenant>/<id>/..." or "work/<id>/..." (downloads
// audit the key).
func resourceJob(res string) string {
	if id, ok := strings.CutPrefix(res, "job/"); ok {
		return id
	}
	parts := strings.SplitN(res, "/", 4)
	switch {
	case len(parts) >= 3 && (parts[0] == "inputs" || parts[0] == "results"):
		return parts[2]
	case len(parts) >= 2 && parts[0] == "work":
		return parts[1]
	}
	return ""
}

// hit is a message of the user found by a scan: rest, when set, is what the message
// holds of other users (a batch without the user's rows), to publish again.
type hit struct {
	seq     uint64
	subject string
	header  nats.Header
	rest    []byte
}

// eraseMessages deletes the matching messages of one stream. A batch that also holds
// other users' rows is first published again without the user's rows (see republish),
// then deleted. It returns how many messages were deleted and how many of them were
// published again.
func (e *Eraser) eraseMessages(ctx context.Context, stream, filter string, keepSubjects []string, m messageMatcher) (deleted, rewritten int, err error) {
	s, err := e.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("erasure: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("erasure: stream %s: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return 0, 0, nil
	}
	keep := func(subject string) bool { return slices.Contains(keepSubjects, subject) }
	var hits []hit
	if info.Config.Retention == jetstream.WorkQueuePolicy {
		hits, err = scanByGet(ctx, s, info.State.FirstSeq, filter, keep, m)
	} else {
		hits, err = scanOrdered(ctx, s, filter, keep, m)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("erasure: scan %s: %w", stream, err)
	}
	for _, h := range hits {
		if h.rest != nil {
			// Published before the original goes: a failure in between leaves the
			// original, which the next run finds and rewrites to the same message id.
			if err := e.republish(ctx, stream, h); err != nil {
				return deleted, rewritten, err
			}
			if e.afterRepublish != nil {
				if err := e.afterRepublish(); err != nil {
					return deleted, rewritten, err
				}
			}
		}
		err := s.SecureDeleteMsg(ctx, h.seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || isMsgGone(err) {
			continue // acknowledged off a work queue, or expired, meanwhile
		}
		if err != nil {
			return deleted, rewritten, fmt.Errorf("erasure: delete %s message %d: %w", stream, h.seq, err)
		}
		deleted++
		if h.rest != nil {
			rewritten++
		}
	}
	return deleted, rewritten, nil
}

// republish publishes a batch without the erased user's rows on the original's
// subject, with its headers. The message id is derived from the original's and the
// new body ("<original id>~<sha256 of the body>"), so a rerun after a failure between
// this publish and the delete is dropped as a duplicate by the stream. Outside the
// stream's duplicate window a rerun stores it twice; the sink writes its rows once all
// the same, as it skips row ids it already holds.
func (e *Eraser) republish(ctx context.Context, stream string, h hit) error {
	orig := h.header.Get(jetstream.MsgIDHeader)
	if orig == "" {
		orig = fmt.Sprintf("%s:%d", stream, h.seq)
	}
	sum := sha256.Sum256(h.rest)
	header := nats.Header{}
	for k, v := range h.header {
		// The id is set anew; expectations of the original publish no longer hold.
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-Expected-") {
			continue
		}
		header[k] = v
	}
	out := streams.Output{Subject: h.subject, MsgID: orig + "~" + hex.EncodeToString(sum[:8]), Data: h.rest, Header: header}
	if err := e.pub.Publish(ctx, out); err != nil {
		return fmt.Errorf("erasure: publish %s message %d again without the user's rows: %w", stream, h.seq, err)
	}
	return nil
}

// isMsgGone recognises the server's "no message found" answer to a delete.
func isMsgGone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}

// scanOrdered reads a limits stream once through an ordered consumer. Each fetch asks
// for exactly the messages known to be pending, so it returns as soon as they arrive
// instead of waiting out its expiry.
func scanOrdered(ctx context.Context, s jetstream.Stream, filter string, keep func(string) bool, m messageMatcher) ([]hit, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	var pending uint64
	for _, n := range info.State.Subjects {
		pending += n
	}
	if pending == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	var hits []hit
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			pending = meta.NumPending
			if keep(msg.Subject()) {
				continue
			}
			if erase, rest := m.filter(msg.Data()); erase {
				hits = append(hits, hit{seq: meta.Sequence.Stream, subject: msg.Subject(), header: msg.Headers(), rest: rest})
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			// Messages counted a moment ago expired or were deleted meanwhile.
			break
		}
	}
	return hits, ctx.Err()
}

// scanByGet reads a work-queue stream message by message ("next message at or after
// seq"), since such streams refuse a consumer that overlaps their workers'.
func scanByGet(ctx context.Context, s jetstream.Stream, first uint64, filter string, keep func(string) bool, m messageMatcher) ([]hit, error) {
	var hits []hit
	for seq := first; ; {
		msg, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return hits, nil
		}
		if err != nil {
			return nil, err
		}
		if !keep(msg.Subject) {
			if erase, rest := m.filter(msg.Data); erase {
				hits = append(hits, hit{seq: msg.Sequence, subject: msg.Subject, header: msg.Header, rest: rest})
			}
		}
		seq = msg.Sequence + 1
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
