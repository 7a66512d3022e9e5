// Package jobs owns job state: the job record of each job (Store, KV bucket "jobs"),
// the per-user job index (Index) and the result cache (Cache). Each store is a thin
// layer over the streams KV helper; the rules on the record (who moves it to which
// status) live with the stage handler and ingest, which call Store.Update.
package jobs
