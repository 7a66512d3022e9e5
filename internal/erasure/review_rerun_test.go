package erasure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/streams"
)

// Erase's doc promises that an erasure that fails half-way finds everything again when
// run again. Step 4 (KV buckets: job records and the job index) runs before step 5
// (stream messages), and step 5 finds messages that name only a job id through the
// records and index. This test sets up the state of an erasure that failed in step 5
// (records and index of alice already purged, streams untouched) and runs it again.
func TestEraseRunAgainAfterFailingInTheStreamStepStillFindsMessagesNamingOnlyAJob(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, false)
	ids := w.jobIDs["acme/alice"]
	recs, err := w.s.JS.KeyValue(ctx, jobs.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := recs.Purge(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := streams.PurgeSubject(ctx, w.s.JS, streams.KVStream(jobs.BucketIndex), streams.KVSubject(jobs.BucketIndex, "acme.alice.>")); err != nil {
		t.Fatal(err)
	}
	eraser, err := erasure.NewEraser(ctx, w.s.JS, w.blobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, m := range w.everyMessage() {
		if strings.HasPrefix(m.stream, "KV_") || strings.HasPrefix(m.stream, "OBJ_") {
			continue
		}
		for _, id := range ids {
			if strings.Contains(string(m.data), id) {
				t.Errorf("the rerun left %s %s naming alice's job %s: %s", m.stream, m.subject, id, m.data)
			}
		}
	}
}
