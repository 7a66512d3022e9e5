package quota_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
	"github.com/sirupsen/logrus"
)

func TestActiveJobCapHoldsExactlyAcrossReplicas(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	var stores []*quota.ActiveJobs
	for _, js := range s.Replicas(t, 2) {
		a, err := quota.OpenActiveJobs(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, a)
	}
	const limit = 3
	var mu sync.Mutex
	var won []string
	var refusals []error
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("job-%02d", i)
			err := stores[i%2].Acquire(ctx, "acme", "alice", id, limit)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won = append(won, id)
			} else {
				refusals = append(refusals, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != limit || len(refusals) != 24-limit {
		t.Fatalf("%d jobs got a slot, want exactly %d (refusals: %v)", len(won), limit, refusals)
	}
	for _, err := range refusals {
		var ex *quota.Exceeded
		if !errors.As(err, &ex) || !errors.Is(err, quota.ErrTooManyActive) || ex.Used != limit || ex.Code() != "too_many_active_jobs" {
			t.Fatalf("refusal %v does not say %d jobs are running", err, limit)
		}
		if want := "3 jobs are already queued or running (the limit is 3)"; err.Error()[:len(want)] != want {
			t.Fatalf("message %q", err.Error())
		}
	}

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "acquiring a slot the job holds succeeds without taking another", run: func(t *testing.T) {
			if err := stores[1].Acquire(ctx, "acme", "alice", won[0], limit); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another user has slots of their own", run: func(t *testing.T) {
			if err := stores[0].Acquire(ctx, "acme", "bob", "bob-1", limit); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a release is idempotent and frees exactly one slot", run: func(t *testing.T) {
			for i, want := range []bool{true, false} {
				got, err := stores[i].Release(ctx, "acme", "alice", won[0])
				if err != nil || got != want {
					t.Fatalf("release %d = %v, %v; want %v", i, got, err, want)
				}
			}
			if err := stores[1].Acquire(ctx, "acme", "alice", "job-new", limit); err != nil {
				t.Fatal(err)
			}
			if err := stores[0].Acquire(ctx, "acme", "alice", "job-newer", limit); !errors.Is(err, quota.ErrTooManyActive) {
				t.Fatalf("fourth job: %v", err)
			}
		}},
		{name: "a final result on the results stream frees the slot", run: func(t *testing.T) {
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			r, err := streams.NewRunner(ctx, s.NC, s.JS, streams.HandlerFunc(stores[0].ReleaseFinished), streams.RunnerConfig{
				Stage: quota.StageActiveJobs, Spec: quota.ActiveJobsConsumer(), PullExpiry: time.Second, Log: quietLog(),
			})
			if err != nil {
				t.Fatal(err)
			}
			go func() { done <- r.Run(runCtx) }()
			defer func() { cancel(); <-done }()
			streamstest.Eventually(t, 5*time.Second, func() bool {
				_, err := s.JS.Consumer(ctx, schemas.StreamResults, quota.ActiveConsumer)
				return err == nil
			}, "the releasing consumer never appeared")
			res := schemas.ResultEvent{Schema: schemas.SchemaJobResult, JobID: won[1], Tenant: "acme", User: "alice", Task: schemas.TaskUpscale, Status: schemas.StatusFailed}
			data, _ := json.Marshal(res)
			if _, err := s.JS.Publish(ctx, schemas.ResultSubject("acme", schemas.TaskUpscale), data); err != nil {
				t.Fatal(err)
			}
			streamstest.Eventually(t, 5*time.Second, func() bool {
				ids, err := stores[1].Active(ctx, "acme", "alice")
				return err == nil && len(ids) == limit-1
			}, "the slot of %s was not released", won[1])
		}},
		{name: "a slot whose job already ended is reclaimed at the cap", run: func(t *testing.T) {
			jobStore, err := jobs.Open(ctx, s.JS)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"job-leak-1", "job-leak-2"} {
				if err := stores[0].Acquire(ctx, "acme", "dave", id, 2); err != nil {
					t.Fatal(err)
				}
			}
			// The job finished, but its release was lost (say, a crash).
			if err := jobStore.Create(ctx, &schemas.JobRecord{ID: "job-leak-1", Tenant: "acme", User: "dave", Status: schemas.StatusSucceeded}); err != nil {
				t.Fatal(err)
			}
			if err := jobStore.Create(ctx, &schemas.JobRecord{ID: "job-leak-2", Tenant: "acme", User: "dave", Status: schemas.StatusRunning}); err != nil {
				t.Fatal(err)
			}
			if err := stores[1].Acquire(ctx, "acme", "dave", "job-3", 2); err != nil {
				t.Fatalf("the leaked slot was not reclaimed: %v", err)
			}
			if err := stores[1].Acquire(ctx, "acme", "dave", "job-4", 2); !errors.Is(err, quota.ErrTooManyActive) {
				t.Fatalf("a running job's slot was reclaimed: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return l
}
