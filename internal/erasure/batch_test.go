package erasure_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// batchMessage is a stored batch message with its id.
type batchMessage struct {
	seq   uint64
	msgID string
	data  []byte
}

// batchesOf returns the messages on subject whose body names producer.
func batchesOf(t *testing.T, js jetstream.JetStream, stream, subject, producer string) []batchMessage {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []batchMessage
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject && strings.Contains(string(m.Data), `"producer":"`+producer+`"`) {
			out = append(out, batchMessage{seq: m.Sequence, msgID: m.Header.Get(jetstream.MsgIDHeader), data: m.Data})
		}
	}
	return out
}

// TestErasureKeepsOtherUsersRowsOfABatch erases alice while batch messages hold her
// rows beside bob's and another tenant's alice's: her rows go, theirs stay in a batch
// published again under an id derived from the original, once even when the erasure
// is interrupted between that publish and the delete and run again.
func TestErasureKeepsOtherUsersRowsOfABatch(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, false)
	pub := streams.JSPublisher{JS: w.s.JS}
	now := time.Now().UTC().Truncate(time.Second)
	run := func(tenant, user, job string) schemas.StageRun {
		return schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: job, Tenant: tenant, User: user, Stage: schemas.StagePreprocess, Attempt: 1, Outcome: "ok", StartedAt: now}
	}
	runs := []schemas.StageRun{run("acme", "alice", "a1"), run("acme", "bob", "b1"), run("acme", "alice", "a2"), run("globex", "alice", "g1"), run("acme", "bob", "b2")}
	out, err := telemetry.EncodeStageRuns("mixed", 7, runs)
	if err != nil {
		t.Fatal(err)
	}
	// An audit batch: alice's own event, an operator's action on her, and bob's event.
	events := []schemas.AuditEvent{
		auth.Event(auth.Principal{Tenant: "acme", User: "alice"}, auth.ActionJobSubmit, "job/a1", auth.ResultAllowed, auth.Request{}),
		auth.Event(auth.Principal{Tenant: "acme", User: "operator"}, auth.ActionUserSetTier, "user/alice", auth.ResultAllowed, auth.Request{}),
		auth.Event(auth.Principal{Tenant: "acme", User: "bob"}, auth.ActionJobSubmit, "job/b1", auth.ResultAllowed, auth.Request{}),
	}
	auditOut, err := telemetry.EncodeAudit("mixed", 3, events)
	if err != nil {
		t.Fatal(err)
	}
	// A batch of alice's rows only goes whole.
	only, err := telemetry.EncodeStageRuns("mixed", 8, runs[:1])
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, out, auditOut, only); err != nil {
		t.Fatal(err)
	}
	original := batchesOf(t, w.s.JS, schemas.StreamTelemetry, schemas.SubjectTelemetryBatch, "mixed")
	if len(original) != 2 {
		t.Fatalf("%d telemetry batches of the producer stored, want 2", len(original))
	}

	eraser, err := erasure.NewEraser(ctx, w.s.JS, w.blobs)
	if err != nil {
		t.Fatal(err)
	}
	// The first run stops right after the first batch was published again, before the
	// original is deleted (a crash there); the second run completes.
	stop := errors.New("stopped between publish and delete")
	erasure.SetAfterRepublish(eraser, func() error { return stop })
	if _, err := eraser.Erase(ctx, "acme", "alice"); !errors.Is(err, stop) {
		t.Fatalf("interrupted erasure: %v", err)
	}
	erasure.SetAfterRepublish(eraser, nil)
	rep, err := eraser.Erase(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewritten[schemas.StreamTelemetry] != 1 || rep.Rewritten[schemas.StreamAudit] != 1 {
		t.Errorf("rewritten %v, want one TELEMETRY and one AUDIT batch", rep.Rewritten)
	}

	after := batchesOf(t, w.s.JS, schemas.StreamTelemetry, schemas.SubjectTelemetryBatch, "mixed")
	if len(after) != 1 {
		t.Fatalf("%d telemetry batches of the producer left, want the one published again: %+v", len(after), after)
	}
	got := after[0]
	if got.seq == original[0].seq || !strings.HasPrefix(got.msgID, original[0].msgID+"~") {
		t.Errorf("batch left: seq %d id %q; want a new message whose id derives from %q", got.seq, got.msgID, original[0].msgID)
	}
	var b schemas.TelemetryBatch
	if err := json.Unmarshal(got.data, &b); err != nil {
		t.Fatal(err)
	}
	if b.Validate() != nil || b.Producer != "mixed" || b.Seq != 7 {
		t.Errorf("the batch published again lost its envelope: %s", got.data)
	}
	var jobs []string
	for _, r := range b.StageRuns {
		jobs = append(jobs, r.Tenant+"/"+r.User+"/"+r.JobID)
	}
	if want := "acme/bob/b1 globex/alice/g1 acme/bob/b2"; strings.Join(jobs, " ") != want {
		t.Errorf("rows left %v, want %s (in their order)", jobs, want)
	}

	audits := batchesOf(t, w.s.JS, schemas.StreamAudit, schemas.SubjectAuditBatch, "mixed")
	if len(audits) != 1 {
		t.Fatalf("%d audit batches of the producer left, want 1", len(audits))
	}
	var ab schemas.AuditBatch
	if err := json.Unmarshal(audits[0].data, &ab); err != nil {
		t.Fatal(err)
	}
	if len(ab.Events) != 1 || ab.Events[0].Actor != "bob" {
		t.Errorf("audit rows left %+v, want bob's event only", ab.Events)
	}

	again, err := eraser.Erase(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Messages) != 0 || len(again.Rewritten) != 0 {
		t.Errorf("a third run found more: messages %v, rewritten %v", again.Messages, again.Rewritten)
	}
}
