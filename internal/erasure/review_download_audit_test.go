package erasure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/erasure"
)

// The download routes (ingest/jobs.go, GET /v1/jobs/{id}/results/{name} and /input)
// audit the object key as the resource, not "job/<id>". Any user of the tenant may
// download a job of the tenant, so the actor need not be the erased user.
func TestEraseRemovesDownloadAuditEventsThatNameTheUsersObjectKeys(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, false)
	job := w.jobIDs["acme/alice"][0]
	for _, key := range []string{"results/acme/" + job + "/cutout.png", "inputs/acme/" + job + "/original.png"} {
		e := auth.Event(auth.Principal{Tenant: "acme", User: "bob"}, auth.ActionDownload, key, auth.ResultAllowed, auth.Request{})
		if err := w.audit.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	eraser, err := erasure.NewEraser(ctx, w.s.JS, w.blobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, m := range w.everyMessage() {
		if strings.Contains(m.subject+" "+string(m.data), job) {
			t.Errorf("after erasing acme/alice, %s %s still names her job %s: %s", m.stream, m.subject, job, m.data)
		}
	}
}
