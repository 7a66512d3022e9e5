package erasure_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// Objects must not outlive the records erasure finds them by: the sweeper deletes old
// uploads, the inputs and results of jobs whose record expired, and the intermediate
// artifacts of finished jobs, and keeps everything a live record still points at.
func TestRetentionDeletesWhatNoRecordReaches(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	store, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)

	put := func(key string) {
		_, err := blobs.Put(ctx, key, bytes.NewReader([]byte("x")), 1, "application/octet-stream")
		require.NoError(t, err)
	}
	record := func(id string, st schemas.Status) {
		require.NoError(t, store.Create(ctx, &schemas.JobRecord{ID: id, Tenant: "t", User: "u", Tier: schemas.TierNormal,
			Task: schemas.TaskRemoveBackground, Model: "isnet", Status: st, SubmittedAt: time.Now().UTC()}))
	}
	record("live", schemas.StatusSucceeded)
	record("running", schemas.StatusRunning)
	tests := []struct {
		name string
		key  string
		gone bool
	}{
		{"an unused upload expires", "uploads/t/u/old-upload", true},
		{"the input of a job whose record expired is deleted", "inputs/t/expired/original.png", true},
		{"the result of a job whose record expired is deleted", "results/t/expired/mask.png", true},
		{"the input of a live job is kept", "inputs/t/live/original.png", false},
		{"the result of a live job is kept", "results/t/live/mask.png", false},
		{"the artifacts of a finished job are deleted", "work/live/input.u8", true},
		{"the artifacts of a running job are kept", "work/running/input.u8", false},
		{"the artifacts of a forgotten job are deleted", "work/expired/input.u8", true},
	}
	for _, tt := range tests {
		put(tt.key)
	}
	r := &erasure.Retention{Blobs: blobs, Jobs: store, Log: quietLog()}

	swept, err := r.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, erasure.Swept{}, swept, "nothing is old yet")

	r.Now = func() time.Time { return time.Now().Add(38 * 24 * time.Hour) }
	swept, err = r.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, erasure.Swept{Uploads: 1, JobObjects: 2, Work: 2}, swept)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := blobs.Stat(ctx, tt.key)
			if tt.gone {
				require.ErrorIs(t, err, blob.ErrNotFound)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// With several replicas, one sweeps at a time: the others skip while the lock is held,
// and the lock is free again once the holder is done.
func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return l
}
