package erasure_test

import (
	"context"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestTheRegistryClassifiesEveryStreamAndBucketOfAProvisionedServer(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	reg := erasure.DefaultRegistry()
	kvRows := map[string]erasure.KVData{}
	for _, kv := range reg.KV {
		if _, dup := kvRows[kv.Bucket]; dup {
			t.Errorf("bucket %s is registered twice", kv.Bucket)
		}
		kvRows[kv.Bucket] = kv
	}
	onServer := map[string]bool{}

	t.Run("every stream on the server holds user data the registry finds, or none, and says why", func(t *testing.T) {
		names := s.JS.StreamNames(ctx)
		n := 0
		for name := range names.Name() {
			n++
			onServer[name] = true
			how, ok := reg.Classify(name)
			if !ok {
				t.Errorf("stream %s is not in erasure.DefaultRegistry: say how a user's data is found there, or why it holds none", name)
				continue
			}
			t.Logf("%-18s %s", name, how)
		}
		if err := names.Err(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("the provisioned server has no streams")
		}
	})
	t.Run("every bucket of topology.Buckets is registered", func(t *testing.T) {
		for _, cfg := range topology.Buckets(streams.DefaultTopology(1)) {
			if _, ok := kvRows[cfg.Bucket]; !ok {
				t.Errorf("KV bucket %s (topology.Buckets) is not in erasure.DefaultRegistry", cfg.Bucket)
			}
		}
	})
	t.Run("every registered place exists on the server unless it is a legacy bucket", func(t *testing.T) {
		for _, kv := range reg.KV {
			if !kv.Legacy && !onServer[streams.KVStream(kv.Bucket)] {
				t.Errorf("registered bucket %s is not provisioned", kv.Bucket)
			}
		}
		for _, sd := range reg.Streams {
			if !onServer[sd.Stream] {
				t.Errorf("registered stream %s is not provisioned", sd.Stream)
			}
		}
		for _, b := range reg.ObjectBuckets {
			if !onServer["OBJ_"+b] {
				t.Errorf("registered object store %s is not provisioned", b)
			}
		}
	})
	t.Run("each row says how to find a user's entries or why there are none", func(t *testing.T) {
		for _, kv := range reg.KV {
			finds := kv.Filters != nil || kv.Scan != nil && kv.ScanFilter != nil
			if finds == (kv.NoUserData != "") {
				t.Errorf("bucket %s: want either a way to find a user's keys or a reason it holds none", kv.Bucket)
			}
		}
		for _, od := range reg.Objects {
			if strings.TrimSpace(od.What) == "" || od.Prefixes == nil && od.Keys == nil {
				t.Errorf("object row %q says neither what it holds nor where", od.What)
			}
		}
	})
	t.Run("a stream the registry does not know is reported", func(t *testing.T) {
		for _, name := range []string{"KV_someone_elses", "OBJ_other", "NEWSTREAM"} {
			if _, ok := reg.Classify(name); ok {
				t.Errorf("Classify(%s) = ok for a place the registry does not list", name)
			}
		}
	})
}
