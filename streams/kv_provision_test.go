package streams_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestKVStreamConfigIsNatsGosWithDirectGetOff keeps KVStreamConfig in step with the
// client library: a bucket it provisions differs from one nats.go creates only in
// AllowDirect, so the library binds and uses it as its own.
func TestKVStreamConfigIsNatsGosWithDirectGetOff(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	cases := []struct {
		name string
		cfg  jetstream.KeyValueConfig
	}{
		{"a bucket with history and no TTL", jetstream.KeyValueConfig{Description: "d", History: 3, Storage: jetstream.FileStorage}},
		{"a bucket with a TTL under the de-duplication window", jetstream.KeyValueConfig{TTL: time.Minute, Storage: jetstream.MemoryStorage}},
		{"a bucket with a long TTL and size limits", jetstream.KeyValueConfig{TTL: time.Hour, MaxBytes: 1 << 20, MaxValueSize: 1024, Storage: jetstream.FileStorage}},
		{"a bucket with per-key TTLs", jetstream.KeyValueConfig{TTL: time.Hour, LimitMarkerTTL: time.Minute, Storage: jetstream.FileStorage}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lib, ours := tc.cfg, tc.cfg
			lib.Bucket, ours.Bucket = "lib"+string(rune('a'+i)), "ours"+string(rune('a'+i))
			if _, err := s.JS.CreateKeyValue(ctx, lib); err != nil {
				t.Fatal(err)
			}
			ourKV, err := streams.ProvisionKV(ctx, s.JS, ours)
			if err != nil {
				t.Fatal(err)
			}
			want := streamConfig(ctx, t, s, streams.KVStream(lib.Bucket))
			got := streamConfig(ctx, t, s, streams.KVStream(ours.Bucket))
			if !want.AllowDirect || got.AllowDirect {
				t.Errorf("AllowDirect: nats.go %v, ours %v; want true and false", want.AllowDirect, got.AllowDirect)
			}
			want.Name, want.Subjects, want.AllowDirect = got.Name, got.Subjects, false
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config differs from nats.go's:\n got %+v\nwant %+v", got, want)
			}
			// The library uses the bucket as its own.
			if _, err := ourKV.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if e, err := ourKV.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
				t.Fatalf("get: %v", err)
			}
		})
	}
}

func TestProvisionKVTurnsDirectGetOffOnAnExistingBucket(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	cfg := jetstream.KeyValueConfig{Bucket: "legacy", History: 1, Storage: jetstream.FileStorage}
	if _, err := s.JS.CreateKeyValue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.ProvisionKV(ctx, s.JS, cfg); err != nil {
		t.Fatal(err)
	}
	if streamConfig(ctx, t, s, streams.KVStream("legacy")).AllowDirect {
		t.Fatal("direct get is still on after provisioning an existing bucket")
	}
}

func streamConfig(ctx context.Context, t *testing.T, s *streamstest.Server, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := s.JS.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

// TestBindKVWaitsForABucketCreatedAMomentLater: a process whose provisioning returned
// before the bucket answered (another process created it an instant earlier, on a
// cluster still electing) binds it once it answers; a bucket that never comes is
// reported after the bounded wait, not hung on.
func TestBindKVWaitsForABucketCreatedAMomentLater(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	streams.SetBindWait(t, 10*time.Second)
	created := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		_, err := s.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "late"})
		created <- err
	}()
	kv, err := streams.BindKV(ctx, s.JS, "late")
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("bind a bucket created 0.7 s later: %v", err)
	}
	if kv.Bucket() != "late" {
		t.Fatalf("bound %q", kv.Bucket())
	}

	streams.SetBindWait(t, 600*time.Millisecond)
	began := time.Now()
	_, err = streams.BindKV(ctx, s.JS, "never")
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a bucket that never comes: %v, want ErrBucketNotFound", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("gave up after %s; want about the 0.6 s wait", took)
	}
}
