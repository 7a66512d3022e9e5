package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// The batch webhook: a batch's jobs send no webhook of their own; the result of
// whichever job ends last (by the time its RESULTS message is handled, every job of
// the batch is final) sends one schemas.BatchCompleted to the batch's callback URL.
// Two such results can be handled at once on two ingest replicas; both see the batch
// complete, and a KV create in the idempotency bucket (batchClaimKey) picks one. The
// claim holds the stream sequence of the result that won it, so that result's retries
// (the same message, redelivered) keep it; after a 2xx it becomes "sent", and later
// deliveries of any of the batch's results call nobody.

// batchClaimSent marks a batch whose completion webhook was delivered.
const batchClaimSent = "sent"

// batchClaimKey is the claim on a batch's completion webhook in the idempotency
// bucket: "b.<tenant>.<user>.<batch>" (erased with the user, see internal/erasure).
func batchClaimKey(tenant, user, batch string) string {
	return "b." + tenant + "." + user + "." + batch
}

// deliverBatchWebhook sends the batch's completion webhook when res's job was the last
// of its batch to end and this message holds the claim; otherwise it does nothing. An
// error is retried by the runner.
func (s *Service) deliverBatchWebhook(ctx context.Context, client *http.Client, m *streams.Msg, res *schemas.ResultEvent, entry jobs.IndexEntry, attempt int) error {
	if s.idem == nil {
		return streams.Permanent(errors.New("batch webhook: no claim bucket (ingest runs without WithIdempotency); the webhook is not sent"))
	}
	sum, complete, err := s.batchSummary(ctx, res.Tenant, res.User, entry.Batch)
	if err != nil || !complete {
		return err
	}
	key, seq := batchClaimKey(res.Tenant, res.User, entry.Batch), strconv.FormatUint(m.StreamSeq, 10)
	switch err := s.idem.Create(ctx, key, []byte(seq)); {
	case errors.Is(err, streams.ErrKeyExists):
		held, err := s.idem.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("batch webhook: read the claim on %s: %w", entry.Batch, err)
		}
		if string(held) != seq {
			return nil // another result's delivery holds it, or it was sent
		}
	case err != nil:
		return fmt.Errorf("batch webhook: claim %s: %w", entry.Batch, err)
	}
	body, err := json.Marshal(sum)
	if err != nil {
		return streams.Permanent(fmt.Errorf("encode the summary of batch %s: %w", entry.Batch, err))
	}
	h := http.Header{}
	h.Set("Studio-Batch-Id", entry.Batch)
	status, err := s.postWebhook(ctx, client, entry.CallbackURL, res.Tenant, schemas.SchemaBatchCompleted, entry.Batch+"."+strconv.Itoa(attempt), h, body)
	log := s.log.WithFields(logrus.Fields{"batch": entry.Batch, "tenant": res.Tenant, "stage": "webhooks", "attempt": attempt,
		"callback_url": redactURL(entry.CallbackURL), "status_code": status})
	if err != nil {
		return fmt.Errorf("batch webhook to %s: %w", redactURL(entry.CallbackURL), err)
	}
	if err := s.idem.Put(ctx, key, []byte(batchClaimSent)); err != nil {
		log.WithError(err).Warn("batch webhook delivered, but not marked sent; a redelivery of this result may send it again")
	}
	log.Info("batch webhook delivered")
	return nil
}

// batchSummary counts the jobs of a user's batch by status; complete reports that
// every one has ended. Jobs that expired or were erased are left out.
func (s *Service) batchSummary(ctx context.Context, tenant, user, batch string) (schemas.BatchCompleted, bool, error) {
	sum := schemas.BatchCompleted{Schema: schemas.SchemaBatchCompleted, BatchID: batch, Tenant: tenant, User: user, JobIDs: []string{}}
	entries, err := s.index.Entries(ctx, tenant, user)
	if err != nil {
		return sum, false, fmt.Errorf("batch webhook: job index unavailable: %w", err)
	}
	for _, e := range entries {
		if e.Batch != batch {
			continue
		}
		rec, err := s.jobs.Get(ctx, e.JobID)
		if errors.Is(err, jobs.ErrNotFound) {
			continue
		}
		if err != nil {
			return sum, false, fmt.Errorf("batch webhook: read job %s: %w", e.JobID, err)
		}
		if !rec.Status.Final() {
			return sum, false, nil
		}
		sum.Task, sum.Total = rec.Task, sum.Total+1
		sum.JobIDs = append(sum.JobIDs, rec.ID)
		switch rec.Status {
		case schemas.StatusSucceeded:
			sum.Counts.Succeeded++
		case schemas.StatusFailed:
			sum.Counts.Failed++
		case schemas.StatusCancelled:
			sum.Counts.Cancelled++
		}
		if rec.FinishedAt.After(sum.CompletedAt) {
			sum.CompletedAt = rec.FinishedAt.UTC()
		}
	}
	sort.Strings(sum.JobIDs)
	return sum, sum.Total > 0, nil
}
