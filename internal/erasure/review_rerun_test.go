package erasure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
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

	// The first run fails in the stream step: its registry names one stream more, with a name the server refuses,
	// last, so every real stream was scanned and nothing after the step ran.
	broken, err := erasure.NewEraser(ctx, w.s.JS, w.blobs)
	if err != nil {
		t.Fatal(err)
	}
	reg := erasure.DefaultRegistry()
	reg.Streams = append(reg.Streams, erasure.StreamData{Stream: "not a stream name"})
	broken.SetRegistry(reg)
	if _, err := broken.Erase(ctx, "acme", "alice"); err == nil {
		t.Fatal("an erasure over a missing stream succeeded; the test cannot make it fail")
	}
	// The job records and the index that lead to the rest must still be there.
	recs, err := w.s.JS.KeyValue(ctx, jobs.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := recs.Get(ctx, id); err != nil {
			t.Errorf("job %s's record is gone after a failed stream step (%v): a rerun could not find its objects", id, err)
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
