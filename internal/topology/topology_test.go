package topology_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// readYourWritesN is how many keys and objects each cluster test writes through one
// node and reads back through another. With direct get, 4-8% of such reads missed.
const readYourWritesN = 500

func TestEveryBucketIsReadFromItsStreamLeader(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	for _, cfg := range topology.Buckets(streams.DefaultTopology(1)) {
		info, err := s.JS.Stream(ctx, streams.KVStream(cfg.Bucket))
		if err != nil {
			t.Fatalf("bucket %s: %v", cfg.Bucket, err)
		}
		if info.CachedInfo().Config.AllowDirect {
			t.Errorf("bucket %s allows direct get: a lagging replica may answer its reads", cfg.Bucket)
		}
	}
	info, err := s.JS.Stream(ctx, "OBJ_"+natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if info.CachedInfo().Config.AllowDirect {
		t.Errorf("object store %s allows direct get", natsobj.Bucket)
	}
}

func TestClusterJobRecordsWrittenThroughOneNodeAreReadThroughAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := streamstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := make([]*jobs.Store, len(c.JS))
	for i, js := range c.JS {
		st, err := jobs.Open(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	misses := 0
	for i := range readYourWritesN {
		w, r := stores[i%3], stores[(i+1)%3]
		id := fmt.Sprintf("ryw-%04d", i)
		if err := w.Create(ctx, &schemas.JobRecord{ID: id, Tenant: "acme", User: "u1", Status: schemas.StatusQueued}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		rec, err := r.Get(ctx, id)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			misses++
		case err != nil:
			t.Fatalf("get %s: %v", id, err)
		case rec.ID != id || rec.Status != schemas.StatusQueued:
			t.Fatalf("get %s returned %+v", id, rec)
		}
	}
	if misses > 0 {
		t.Errorf("%d of %d job records written through one node were not found through another", misses, readYourWritesN)
	}
}

func TestClusterObjectsWrittenThroughOneNodeAreReadThroughAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := streamstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores := make([]*natsobj.ObjectStore, len(c.JS))
	for i, js := range c.JS {
		st, err := natsobj.Open(ctx, js, natsobj.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	misses := 0
	for i := range readYourWritesN {
		w, r := stores[i%3], stores[(i+1)%3]
		key := fmt.Sprintf("inputs/acme/ryw-%04d.png", i)
		body := bytes.Repeat([]byte{byte(i)}, 1000+i)
		if _, err := w.Put(ctx, key, bytes.NewReader(body), int64(len(body)), "image/png"); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		rc, _, err := r.Get(ctx, key)
		if err != nil {
			t.Logf("get %s: %v", key, err)
			misses++
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %s: %d bytes, %v; want %d bytes", key, len(got), err, len(body))
		}
	}
	if misses > 0 {
		t.Errorf("%d of %d objects written through one node were not found through another", misses, readYourWritesN)
	}
}
