package erasure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Eraser removes everything the service holds about one user of one tenant (a GDPR
// erasure): objects, job records, cache entries, KV state, sessions, API keys and
// stream messages, then asks the ClickHouse sink to delete the user's rows. Safe for
// concurrent use; running it twice for the same user is harmless.
//
// How each kind of data is found:
//   - Jobs: the per-user index (jobs.BucketIndex) plus a scan of the jobs bucket, so jobs
//     submitted before the index existed, or by upstream publishers, are found too.
//   - Objects: inputs/<tenant>/<job>/, results/<tenant>/<job>/ and work/<job>/ of each
//     job. Results another user's job reused through the cache are not the user's and
//     stay; the user's own results that others reused are deleted, and those jobs then
//     report the object gone. On the JetStream object store the delete tombstone,
//     which names the key, is purged too.
//   - KV: keys are "<tenant>.<user>[.<…>]", so each bucket is cleaned with one stream
//     purge by subject filter, which leaves not even a delete marker. Job records are
//     purged through the KV first, so that progress watchers see the deletion.
//   - Stream messages: subjects carry tier, task, tenant or stage but not the user, so
//     no subject filter selects one user's messages (RESULTS narrows to the tenant).
//     Each stream is read once (an ordered consumer; a direct read for work-queue
//     streams, which allow no second consumer) and every message whose JSON body names
//     the user or one of the user's jobs is deleted with SecureDeleteMsg, which
//     overwrites the stored bytes. Per-user subjects would allow a filtered purge
//     instead, at the price of a subject per user in every stream; with erasure being
//     rare, the scan is the better trade.
//   - The erasure itself stays on record: the ErasureRequest published on
//     studio.audit.erasure (never scanned) is what the sink keeps in audit_log.
//
// Jobs still queued or running when Erase runs are listed in the report's InFlight: a
// stage may write their results afterwards, so run Erase again once they have ended
// (deleting the user first makes sure no new job starts).
type Eraser struct {
	js       jetstream.JetStream
	blobs    blob.Store
	pub      streams.Publisher
	jobs     *jobs.Store
	users    *auth.Users
	tokens   *auth.Tokens
	userJobs *jobs.Index
	keys     *auth.APIKeys
	cacheKV  jetstream.KeyValue
	jobsKV   jetstream.KeyValue
	now      func() time.Time
}

// NewEraser opens the stores an erasure touches; blobs is the object storage in use
// (streams.ObjectStore or S3).
func NewEraser(ctx context.Context, js jetstream.JetStream, blobs blob.Store) (*Eraser, error) {
	e := &Eraser{js: js, blobs: blobs, pub: streams.JSPublisher{JS: js}, now: time.Now}
	var err error
	if e.jobs, err = jobs.Open(ctx, js); err != nil {
		return nil, err
	}
	if e.users, err = auth.OpenUsers(ctx, js); err != nil {
		return nil, err
	}
	if e.tokens, err = auth.OpenTokens(ctx, js); err != nil {
		return nil, err
	}
	if e.userJobs, err = jobs.OpenIndex(ctx, js); err != nil {
		return nil, err
	}
	if e.keys, err = auth.OpenAPIKeys(ctx, js); err != nil {
		return nil, err
	}
	if e.cacheKV, err = streams.BindKV(ctx, js, jobs.BucketCache); err != nil {
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
}

// Erase removes the user's data and returns what was removed. On error the report
// holds what was done so far, and Erase can simply be run again.
func (e *Eraser) Erase(ctx context.Context, tenant, user string, opts ...EraseOption) (*ErasureReport, error) {
	var o eraseOptions
	for _, opt := range opts {
		opt(&o)
	}
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	rep := &ErasureReport{Tenant: tenant, User: user, RequestedBy: o.requestedBy, Jobs: []string{}, Objects: []string{}, KVKeys: []string{}, Messages: map[string]int{}}
	requestedAt := e.now().UTC()

	// 1. No new sessions or jobs: revoke the sessions (their access tokens die with the
	// family's deny entry, which names no one) and delete the user record.
	fams, err := e.tokens.Families(ctx, tenant, user)
	if err != nil {
		return rep, err
	}
	for _, f := range fams {
		if err := e.tokens.Deny(ctx, auth.DenyKeyFamily(f.ID), f.ExpiresAt.Add(auth.Leeway)); err != nil {
			return rep, err
		}
	}
	rep.Sessions = len(fams)
	for _, step := range []struct{ bucket, filter string }{
		{auth.BucketUsers, prefix},
		{auth.BucketRefresh, prefix + ".>"},
	} {
		if err := e.purgeKV(ctx, step.bucket, step.filter, rep); err != nil {
			return rep, err
		}
	}

	// 2. Find the jobs.
	jobIDs, recs, err := e.findJobs(ctx, tenant, user)
	if err != nil {
		return rep, err
	}
	rep.Jobs = sortedKeys(jobIDs)
	for _, rec := range recs {
		if !rec.Status.Final() {
			rep.InFlight = append(rep.InFlight, rec.ID)
		}
	}
	sort.Strings(rep.InFlight)

	// 3. Objects.
	if err := e.eraseObjects(ctx, tenant, jobIDs, recs, rep); err != nil {
		return rep, err
	}

	// 4. Job records, cache entries and the user's other KV state.
	for _, rec := range recs {
		// Purging through the KV first tells progress watchers the job is gone.
		if err := e.jobs.Delete(ctx, rec.ID); err != nil {
			return rep, err
		}
	}
	for _, id := range rep.Jobs {
		if err := e.purgeKV(ctx, jobs.Bucket, id, rep); err != nil {
			return rep, err
		}
	}
	var cacheKeys []string
	err = streams.ScanJSON(ctx, e.cacheKV, tenant+".*", func(key string, ce jobs.CacheEntry) error {
		if jobIDs[ce.JobID] || ce.User == user {
			cacheKeys = append(cacheKeys, key)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, k := range cacheKeys {
		if err := e.purgeKV(ctx, jobs.BucketCache, k, rep); err != nil {
			return rep, err
		}
	}
	for _, step := range []struct{ bucket, filter string }{
		{quota.BucketActive, prefix},
		{quota.BucketRateLimit, prefix},
		{jobs.BucketIndex, prefix + ".>"},
	} {
		if err := e.purgeKV(ctx, step.bucket, step.filter, rep); err != nil {
			return rep, err
		}
	}
	keyIDs, err := e.keys.OwnedBy(ctx, tenant, user)
	if err != nil {
		return rep, err
	}
	for _, id := range keyIDs {
		if err := e.keys.Delete(ctx, id); err != nil {
			return rep, err
		}
		rep.APIKeys = append(rep.APIKeys, id)
		rep.KVKeys = append(rep.KVKeys, auth.BucketAPIKeys+"/"+id)
	}

	// 5. Stream messages.
	m := messageMatcher{tenant: tenant, user: user, jobs: jobIDs}
	// Every stream on the server, pipeline streams included (the stage table declares
	// those, and streams knows no stage). KV buckets and object stores are streams too;
	// their entries were handled above by key.
	var names []string
	lister := e.js.StreamNames(ctx)
	for name := range lister.Name() {
		if !strings.HasPrefix(name, "KV_") && !strings.HasPrefix(name, "OBJ_") {
			names = append(names, name)
		}
	}
	if err := lister.Err(); err != nil {
		return rep, fmt.Errorf("erasure: list streams to erase %s's messages: %w", user, err)
	}
	for _, name := range names {
		filter := ">"
		if name == schemas.StreamResults {
			filter = schemas.RootResults + "." + tenant + ".>"
		}
		n, err := e.eraseMessages(ctx, name, filter, m)
		if n > 0 {
			rep.Messages[name] = n
		}
		if err != nil {
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

// findJobs returns the user's job ids and the records that still exist.
func (e *Eraser) findJobs(ctx context.Context, tenant, user string) (map[string]bool, []*schemas.JobRecord, error) {
	jobs := map[string]bool{}
	ids, err := e.userJobs.List(ctx, tenant, user)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		jobs[id] = true
	}
	var recs []*schemas.JobRecord
	err = streams.ScanJSON(ctx, e.jobsKV, ">", func(_ string, rec schemas.JobRecord) error {
		if rec.Tenant == tenant && rec.User == user || jobs[rec.ID] {
			jobs[rec.ID] = true
			recs = append(recs, &rec)
		}
		return nil
	})
	return jobs, recs, err
}

func (e *Eraser) eraseObjects(ctx context.Context, tenant string, jobs map[string]bool, recs []*schemas.JobRecord, rep *ErasureReport) error {
	prefixes := func(id string) []string {
		return []string{"inputs/" + tenant + "/" + id + "/", "results/" + tenant + "/" + id + "/", "work/" + id + "/"}
	}
	var keys []string
	add := func(infos []blob.Info, err error) error {
		for _, in := range infos {
			keys = append(keys, in.Key)
		}
		return err
	}
	obs, isObjectStore := e.blobs.(*natsobj.ObjectStore)
	if isObjectStore {
		// The object store lists everything on every call: list once and filter.
		all, err := e.blobs.List(ctx, "")
		if err != nil {
			return err
		}
		for _, in := range all {
			for id := range jobs {
				if hasAnyPrefix(in.Key, prefixes(id)) {
					keys = append(keys, in.Key)
					break
				}
			}
		}
	} else {
		for id := range jobs {
			for _, p := range prefixes(id) {
				if err := add(e.blobs.List(ctx, p)); err != nil {
					return err
				}
			}
		}
	}
	// An input stored under an unusual key still belongs to the job.
	for _, rec := range recs {
		if k := rec.Input.Key; k != "" && strings.Contains(k, "/"+rec.ID+"/") && !hasAnyPrefix(k, prefixes(rec.ID)) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := e.blobs.Delete(ctx, k); err != nil {
			return err
		}
		if isObjectStore {
			if err := obs.PurgeTombstone(ctx, k); err != nil {
				return err
			}
		}
		rep.Objects = append(rep.Objects, k)
	}
	return nil
}

// purgeKV removes every key of bucket matching filter, recording each in the report.
func (e *Eraser) purgeKV(ctx context.Context, bucket, filter string, rep *ErasureReport) error {
	s, err := e.js.Stream(ctx, streams.KVStream(bucket))
	if err != nil {
		return fmt.Errorf("erasure: stream of KV bucket %s: %w", bucket, err)
	}
	subject := streams.KVSubject(bucket, filter)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return fmt.Errorf("erasure: inspect %s: %w", subject, err)
	}
	if len(info.State.Subjects) == 0 {
		return nil
	}
	for subj := range info.State.Subjects {
		rep.KVKeys = append(rep.KVKeys, bucket+"/"+strings.TrimPrefix(subj, "$KV."+bucket+"."))
	}
	return streams.PurgeSubject(ctx, e.js, streams.KVStream(bucket), subject)
}

// messageMatcher recognises a user's messages by their JSON body: events, results,
// telemetry, feedback and DLQ copies name the tenant and user (or the job), audit events
// the actor or the resource.
type messageMatcher struct {
	tenant, user string
	jobs         map[string]bool
}

func (m messageMatcher) match(data []byte) bool {
	var b struct {
		Tenant   string `json:"tenant"`
		User     string `json:"user"`
		Actor    string `json:"actor"`
		JobID    string `json:"job_id"`
		Resource string `json:"resource"`
	}
	if json.Unmarshal(data, &b) != nil {
		return false
	}
	if b.JobID != "" && m.jobs[b.JobID] {
		return true
	}
	if b.Tenant != m.tenant {
		return false
	}
	if b.User == m.user || b.Actor == m.user || b.Resource == "user/"+m.user {
		return true
	}
	id, ok := strings.CutPrefix(b.Resource, "job/")
	return ok && m.jobs[id]
}

// eraseMessages deletes the matching messages of one stream and returns how many.
func (e *Eraser) eraseMessages(ctx context.Context, stream, filter string, m messageMatcher) (int, error) {
	s, err := e.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("erasure: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("erasure: stream %s: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	keep := func(subject string) bool { return subject == schemas.SubjectErasure }
	var seqs []uint64
	if info.Config.Retention == jetstream.WorkQueuePolicy {
		seqs, err = scanByGet(ctx, s, info.State.FirstSeq, filter, keep, m)
	} else {
		seqs, err = scanOrdered(ctx, s, filter, keep, m)
	}
	if err != nil {
		return 0, fmt.Errorf("erasure: scan %s: %w", stream, err)
	}
	n := 0
	for _, seq := range seqs {
		err := s.SecureDeleteMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || isMsgGone(err) {
			continue // acknowledged off a work queue, or expired, meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("erasure: delete %s message %d: %w", stream, seq, err)
		}
		n++
	}
	return n, nil
}

// isMsgGone recognises the server's "no message found" answer to a delete.
func isMsgGone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}

// scanOrdered reads a limits stream once through an ordered consumer. Each fetch asks
// for exactly the messages known to be pending, so it returns as soon as they arrive
// instead of waiting out its expiry.
func scanOrdered(ctx context.Context, s jetstream.Stream, filter string, keep func(string) bool, m messageMatcher) ([]uint64, error) {
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
	var seqs []uint64
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
			if !keep(msg.Subject()) && m.match(msg.Data()) {
				seqs = append(seqs, meta.Sequence.Stream)
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
	return seqs, ctx.Err()
}

// scanByGet reads a work-queue stream message by message ("next message at or after
// seq"), since such streams refuse a consumer that overlaps their workers'.
func scanByGet(ctx context.Context, s jetstream.Stream, first uint64, filter string, keep func(string) bool, m messageMatcher) ([]uint64, error) {
	var seqs []uint64
	for seq := first; ; {
		msg, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return seqs, nil
		}
		if err != nil {
			return nil, err
		}
		if !keep(msg.Subject) && m.match(msg.Data) {
			seqs = append(seqs, msg.Sequence)
		}
		seq = msg.Sequence + 1
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
