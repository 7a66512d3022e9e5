// Package quota holds the fairness rules of the service as pure logic: how many jobs a
// user may have queued or running at once, how many requests a user may make per hour
// (a sliding window), and the error that tells a client which limit it hit and when to
// come back. The state these rules act on lives in NATS KV (quota.ActiveJobs,
// quota.RateLimiter, auth.APIKeys), updated with compare-and-swap so that every
// ingest replica enforces the same caps; this package decides, streams stores.
package quota
