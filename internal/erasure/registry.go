package erasure

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Footprint is what erasure learns about one user before it removes anything: the ids
// by which the user's entries are found in the places the Registry lists.
type Footprint struct {
	Tenant, User string
	// Jobs are the user's job ids: from the job index and a scan of the job records.
	Jobs map[string]bool
	// Records are the user's job records that still exist.
	Records []*schemas.JobRecord
	// APIKeys are the ids of the user's API keys.
	APIKeys []string
	// Uploads are uploads/ keys the user's jobs were submitted with (job index).
	Uploads []string
}

func (f *Footprint) prefix() string { return f.Tenant + "." + f.User }

// KVData says whether a KV bucket holds users' data and, if so, how one user's keys are
// found: key patterns built from the user's ids (Filters), a scan of values (Scan), or
// both.
type KVData struct {
	Bucket string
	// NoUserData, when set, says why the bucket holds nothing that names a user or job;
	// the other fields are then unused.
	NoUserData string
	// Filters returns KV key patterns (with * and > wildcards) that select only keys of
	// the user.
	Filters func(f *Footprint) []string
	// ScanFilter and Scan select keys by value: each key matching ScanFilter(f) whose
	// value Scan accepts is the user's.
	ScanFilter func(f *Footprint) string
	Scan       func(f *Footprint, value []byte) bool
	// Watched buckets are purged through the KV API before the stream purge, so that
	// watchers see the deletion (job records: the progress streams end).
	Watched bool
	// Legacy buckets are no longer provisioned but may still exist on a server that an
	// older version ran on; they are cleaned when present.
	Legacy bool
}

// StreamData says how a stream's messages of one user are found: every message read
// through Filter whose JSON body names the user or one of the user's jobs (see
// messageMatcher), except those on Keep subjects.
type StreamData struct {
	Stream string
	// Filter narrows what is read (nil reads every subject).
	Filter func(f *Footprint) string
	// Keep lists subjects that are never erased: the erasure's own record.
	Keep []string
}

// ObjectData says where objects of one user are stored: under key prefixes or at
// exact keys built from the footprint.
type ObjectData struct {
	// What names the objects ("job inputs").
	What     string
	Prefixes func(f *Footprint) []string
	Keys     func(f *Footprint) []string
}

// Registry is the one list of places that can hold a user's data, with how to find one
// user's entries in each. Erasure walks it; a test checks that every stream and bucket
// of a provisioned server is classified by it, so a new bucket or stream cannot be
// forgotten.
type Registry struct {
	KV      []KVData
	Streams []StreamData
	Objects []ObjectData
	// ObjectBuckets are the JetStream object store buckets that hold the objects above
	// (their streams are OBJ_<bucket>; blob.Store.Purge leaves nothing there).
	ObjectBuckets []string
}

// DefaultRegistry is the registry of the product. Adding a KV bucket (topology.Buckets),
// a stream (streams.Topology) or a kind of object means adding its row here; the
// registry's test fails until then.
func DefaultRegistry() Registry {
	user := func(suffix string) func(f *Footprint) []string {
		return func(f *Footprint) []string { return []string{f.prefix() + suffix} }
	}
	perJob := func(f *Footprint) []string { return sortedKeys(f.Jobs) }
	tenant := func(f *Footprint) string { return f.Tenant + ".*" }
	every := func(*Footprint) string { return ">" }
	return Registry{
		KV: []KVData{
			// Users and sessions come first: no new session or job once erasure starts.
			{Bucket: auth.BucketUsers, Filters: user("")},
			{Bucket: auth.BucketRefresh, Filters: user(".>")},
			{Bucket: streams.BucketLeases, NoUserData: "one key per singleton task naming the process (host and pid) that runs it"},
			{Bucket: rollout.BucketRollouts, NoUserData: "one rollout per task: model versions, steps, figures, and the operator or controller that moved it (an audit trail of operators, not of users' data)"},
			{Bucket: rollout.BucketRouting, NoUserData: "one routing table per task: model versions and their weights"},
			{Bucket: auth.BucketWebhookSecrets, NoUserData: "one secret generation and rotation time per tenant; the secrets are derived, never stored"},
			{Bucket: auth.BucketRevoked, NoUserData: "deny-list entries are keyed by random token and family ids and hold an expiry; they name no user or job"},
			{Bucket: auth.BucketAPIKeys, ScanFilter: every, Scan: func(f *Footprint, v []byte) bool {
				var k auth.APIKey
				return json.Unmarshal(v, &k) == nil && k.Tenant == f.Tenant && k.Owner == f.User
			}},
			{Bucket: auth.BucketKeyUsage, Filters: func(f *Footprint) []string {
				out := make([]string, 0, len(f.APIKeys))
				for _, id := range f.APIKeys {
					out = append(out, id+".>")
				}
				return out
			}},
			// Keyed by job id; the Eraser finds the ids in the index and by scanning the
			// records for the user, so jobs submitted by upstream publishers count too.
			{Bucket: jobs.Bucket, Watched: true, Filters: perJob},
			// Results the user's job reused from another user's stay that user's; the
			// entry that points at the user's job or names the user goes.
			{Bucket: jobs.BucketCache, ScanFilter: tenant, Scan: func(f *Footprint, v []byte) bool {
				var ce jobs.CacheEntry
				return json.Unmarshal(v, &ce) == nil && (f.Jobs[ce.JobID] || ce.User == f.User)
			}},
			{Bucket: jobs.BucketIndex, Filters: user(".>")},
			// "k.": Idempotency-Key claims; "b.": claims on batch completion webhooks.
			{Bucket: jobs.BucketIdempotency, Filters: func(f *Footprint) []string { return []string{"k." + f.prefix() + ".>", "b." + f.prefix() + ".>"} },
				// Claims written before keys named the user ("k.<tenant>.<hash>") are
				// found by the job they name.
				ScanFilter: func(f *Footprint) string { return "k." + f.Tenant + ".*" },
				Scan: func(f *Footprint, v []byte) bool {
					var c struct {
						JobID string `json:"job_id"`
					}
					return json.Unmarshal(v, &c) == nil && f.Jobs[c.JobID]
				}},
			{Bucket: quota.BucketActive, Filters: user("")},
			{Bucket: quota.BucketRateLimit, Filters: func(f *Footprint) []string { return []string{f.prefix(), f.prefix() + ".>"} }}, // job and analytics budgets
			{Bucket: quota.BucketStorage, NoUserData: "one byte count per tenant, summed from the object store; erasure makes ingest count again"},
			// Ingest's own job index of older versions: "j.<tenant>.<hash of user>.<job>".
			{Bucket: "job_index", Legacy: true, Filters: func(f *Footprint) []string {
				h := sha256.Sum256([]byte(f.User + "\x00"))
				return []string{"j." + f.Tenant + "." + hex.EncodeToString(h[:])[:32] + ".>"}
			}},
		},
		Streams: []StreamData{
			{Stream: schemas.StreamRequests},
			{Stream: schemas.StreamPreprocessed},
			{Stream: schemas.StreamInferred},
			{Stream: schemas.StreamPostprocessed},
			// Result subjects carry the tenant.
			{Stream: schemas.StreamResults, Filter: func(f *Footprint) string { return "studio.results." + f.Tenant + ".>" }},
			// Step events of chained jobs; their subjects carry the tenant too.
			{Stream: schemas.StreamSteps, Filter: func(f *Footprint) string { return schemas.RootSteps + "." + f.Tenant + ".>" }},
			{Stream: schemas.StreamTelemetry},
			{Stream: schemas.StreamAudit, Keep: []string{schemas.SubjectErasure}},
			{Stream: schemas.StreamFeedback},
			{Stream: schemas.StreamDLQ},
			// Max-deliveries advisories: stream names and sequences, no user data; listed
			// so that the walk covers every stream.
			{Stream: streams.StreamAdvisories},
		},
		Objects: []ObjectData{
			{What: "job inputs", Prefixes: func(f *Footprint) []string { return eachJob(f, "inputs/"+f.Tenant+"/") }},
			{What: "job results", Prefixes: func(f *Footprint) []string { return eachJob(f, "results/"+f.Tenant+"/") }},
			{What: "intermediate artifacts", Prefixes: func(f *Footprint) []string { return eachJob(f, "work/") }},
			{What: "presigned uploads (uploads/<tenant>/<user>/)", Prefixes: func(f *Footprint) []string {
				return []string{schemas.UploadPrefix + f.Tenant + "/" + f.User + "/"}
			}},
			{What: "uploads the user's jobs were submitted with", Keys: func(f *Footprint) []string {
				var out []string
				for _, k := range f.Uploads {
					if strings.HasPrefix(k, schemas.UploadPrefix+f.Tenant+"/") {
						out = append(out, k)
					}
				}
				return out
			}},
			{What: "inputs and style images stored under an unusual key", Keys: func(f *Footprint) []string {
				var out []string
				for _, rec := range f.Records {
					if k := rec.Input.Key; k != "" && strings.Contains(k, "/"+rec.ID+"/") {
						out = append(out, k)
					}
					if rec.Style != nil && strings.Contains(rec.Style.Key, "/"+rec.ID+"/") {
						out = append(out, rec.Style.Key) // style images of arbitrary-style jobs
					}
				}
				return out
			}},
		},
		ObjectBuckets: []string{natsobj.Bucket},
	}
}

// eachJob returns prefix + "<job>/" for every job of f.
func eachJob(f *Footprint, prefix string) []string {
	out := make([]string, 0, len(f.Jobs))
	for _, id := range sortedKeys(f.Jobs) {
		out = append(out, prefix+id+"/")
	}
	return out
}

// Classify says how the registry treats a stream of the server: a pipeline stream, a
// KV bucket's stream or an object store's. ok is false for a stream the registry does
// not know, which would hold data erasure never looks at.
func (r Registry) Classify(stream string) (how string, ok bool) {
	for _, s := range r.Streams {
		if s.Stream == stream {
			return "stream: messages whose body names the user or a job of the user", true
		}
	}
	if b, isKV := strings.CutPrefix(stream, "KV_"); isKV {
		if kv, found := r.bucket(b); found {
			if kv.NoUserData != "" {
				return "KV bucket with no user data: " + kv.NoUserData, true
			}
			return "KV bucket: the user's keys", true
		}
	}
	if b, isObj := strings.CutPrefix(stream, "OBJ_"); isObj {
		for _, ob := range r.ObjectBuckets {
			if ob == b {
				return "object store: the objects of the registry's object prefixes", true
			}
		}
	}
	return "", false
}

func (r Registry) bucket(name string) (KVData, bool) {
	for _, kv := range r.KV {
		if kv.Bucket == name {
			return kv, true
		}
	}
	return KVData{}, false
}
