package ingest

import (
	_ "embed"
	"html/template"
	"net/http"
	"sort"
)

// indexHTML is a minimal upload page, served when no web studio is mounted.
//
//go:embed web/index.html
var indexHTML []byte

// docsHTML renders /openapi.json with a small script of its own: no file is loaded
// from anywhere but this server, so the docs work offline and under a strict CSP.
//
//go:embed web/docs.html
var docsHTML []byte

//go:embed web/migration-v1-to-v2.html
var migrationHTML []byte

// MountPages serves h (the web studio and the operations dashboard) on the given mux
// patterns, behind the same middleware as the API. Call before Handler.
func (s *Service) MountPages(h http.Handler, patterns []string) {
	s.pages, s.pageRoutes = h, patterns
}

func (s *Service) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(indexHTML)
}

func (s *Service) handleDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:")
	_, _ = w.Write(docsHTML)
}

func (s *Service) handleMigrationDoc(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(migrationHTML)
}

// ProblemCodes documents every problem code the API and the NATS entry answer with;
// /docs/problems lists them (each problem's type links to its entry).
var ProblemCodes = map[string]string{
	"bad_json":                 "400: the body is not JSON (the detail gives the offset).",
	"bad_multipart":            "400: the multipart body is malformed or cut off.",
	"bad_upload":               "400: the upload body could not be read.",
	"empty_image":              "400: the image is 0 bytes.",
	"invalid_idempotency_key":  "400: an Idempotency-Key is 1 to 255 printable ASCII characters.",
	"invalid_request":          "400/422: a path, query or header parameter breaks its constraint.",
	"unauthenticated":          "401: no credential: send Authorization: Bearer <access token or API key> (HTTP header or NATS message header).",
	"invalid_token":            "401: the token or API key is expired, revoked, malformed or unknown; refresh or log in again.",
	"forbidden":                "403: the credential lacks the scope this needs (submitting needs jobs:write).",
	"user_not_found":           "403: the user was deleted (or, on NATS, the sending NATS user has no studio user of its name in the account's tenant); create it or use another credential.",
	"user_disabled":            "403: an admin disabled the user: every API key, token, refresh and ticket of theirs is refused and NATS submissions as them too; their API keys work again once POST /v1/users/{id}/enable lifts it, their sessions need a new login.",
	"disable_self":             "409: an admin cannot disable themselves; ask another admin of the tenant.",
	"credential_in_url":        "401: a token or API key in the URL is refused; mint a single-use ticket with POST /v1/tickets and pass ?ticket=.",
	"invalid_ticket":           "401: the event-stream ticket is used up, expired, forged or for another job; mint a new one with POST /v1/tickets.",
	"key_depth":                "403: a key minted by keys this deep may mint no more; mint from a key higher up the chain.",
	"nats_user_invalid":        "403: the NATS user's name is not a valid studio user id; rename the NATS user.",
	"invalid_ticket_request":   "422: a ticket names 1 to 16 valid job ids.",
	"identity_mismatch":        "403: the request names a tenant or user other than the credential's; leave them out.",
	"invalid_signature":        "403: the presigned upload URL was not signed by this server.",
	"job_not_found":            "404: no job has this id (it may have expired after 30 days).",
	"batch_not_found":          "404: none of your jobs belongs to a batch of this id (they may have expired after 30 days).",
	"no_such_result":           "404: the job has no result of this name (yet).",
	"object_gone":              "404: the file is no longer stored.",
	"not_found":                "404: no such route.",
	"idempotency_conflict":     "409: the Idempotency-Key was used with a different request; use a new key.",
	"job_finished":             "409: only queued or running jobs can be cancelled.",
	"upload_exists":            "409: the presigned upload URL was used already.",
	"upload_url_expired":       "410: the presigned upload URL expired; ask for a new one.",
	"image_too_large":          "413: over the byte limit, the pixel limit or 12000 px on a side, or too much decoding work (JPEG scans, PNG/WebP chunks, metadata or decoded bytes).",
	"storage_quota_exceeded":   "403: your tenant's stored inputs, results and uploads reached its storage quota (the detail names quota and usage); delete results or erase data you no longer need.",
	"webhooks_off":             "503: the server has no webhook secret, so there is no webhook secret to show or rotate.",
	"invalid_window":           "422: the rotation window is a duration from 0s to 720h.",
	"body_too_large":           "413: a batch body over its limit (64 MiB multipart, 1 MiB JSON); split the batch.",
	"too_many_images":          "413: a batch takes at most 50 images; split it.",
	"not_an_image":             "415: the content is not an image.",
	"unsupported_format":       "415: an image format other than JPEG, PNG or WebP (named in the detail).",
	"unsupported_media_type":   "415: POST /v1/jobs takes multipart/form-data or application/json.",
	"corrupt_image":            "422: the image header is damaged.",
	"idempotency_key_mismatch": "422: the Idempotency-Key header and the idempotency_key field differ.",
	"invalid_callback_url":     "422: callback_url must be an absolute http(s) URL without credentials.",
	"invalid_feedback":         "422: the feedback cannot be recorded.",
	"invalid_field":            "422: a field breaks its constraint (see errors).",
	"invalid_image":            "422: the image field is malformed: not base64, both key and data, or a key outside uploads/<tenant>/.",
	"invalid_params":           "422: a parameter is unknown, of the wrong type or out of range for the task (GET /v1/tasks).",
	"invalid_chain":            "422: the steps of a chained job cannot run: errors[].field names the step (steps.<i>.task: a task that cannot take the previous step's output, or unknown; steps: more than 4 steps).",
	"invalid_tenant":           "422: tenant names use letters, digits, '-' and '_'.",
	"invalid_user":             "422: user ids use letters, digits, '-' and '_' (at most 64).",
	"invalid_tier":             "422: the tier is not premium, normal or free.",
	"missing_field":            "422: a required field is missing (named in errors).",
	"missing_object":           "422: image.key names no stored object; upload it first.",
	"task_mismatch":            "422: the body names another task than the NATS subject.",
	"unknown_model":            "422: no model serves this task, model and version (GET /v1/models).",
	"invalid_rollout":          "422: the rollout request names no version of the catalog, or its steps, hold or thresholds are out of range.",
	"rollout_not_found":        "404: the task has no rollout; POST /v2/admin/rollouts starts one.",
	"rollout_active":           "409: the task already has a rollout that has not ended; abort it first.",
	"rollout_state":            "409: the rollout's state does not allow this (only a paused rollout resumes, an ended one cannot be aborted).",
	"webhooks_disabled":        "422: the server has no webhook secret, so callback_url cannot be used.",
	"rate_limited":             "429: too many requests in the last hour: job submissions and upload presigns for your tier (--rate-limit), or operations analytics (--analytics-rate-limit, business report and SQL); wait Retry-After seconds.",
	"too_many_active_jobs":     "429: your tier's number of queued or running jobs is reached; wait for one to finish.",
	"quota_exceeded":           "429: the API key used its requests for today (UTC); wait Retry-After seconds.",
	"internal":                 "500: unexpected error; quote the request id.",
	"queue_full":               "503: the job queue reached its size bound; submit again after Retry-After seconds.",
	"unavailable":              "503: NATS or storage is unreachable, or a feature is not configured; retry.",
}

var problemsPage = template.Must(template.New("problems").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Problem codes · CreativeAI Studio API</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2rem auto;padding:0 1rem}dt{font-family:monospace;font-weight:bold;margin-top:.8rem}:target{background:#ffc}</style>
</head><body><h1>Problem codes</h1>
<p>Errors are RFC 9457 problem details (<code>application/problem+json</code>): <code>type</code> links here,
<code>code</code> is stable, <code>errors</code> lists each offending <code>field</code> with the <code>constraint</code> it broke
(a JSON Schema keyword such as <code>required</code>, <code>maximum</code>, <code>enum</code>).</p>
<dl>{{range .}}<dt id="{{.Code}}">{{.Code}}</dt><dd>{{.Text}}</dd>{{end}}</dl>
<p><a href="/docs">API reference</a></p></body></html>`))

func (s *Service) handleProblemsDoc(w http.ResponseWriter, r *http.Request) {
	type entry struct{ Code, Text string }
	var list []entry
	for c, t := range ProblemCodes {
		list = append(list, entry{c, t})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = problemsPage.Execute(w, list)
}
