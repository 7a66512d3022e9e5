package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

type watched struct {
	N int `json:"n"`
}

// WatchJSON, the one KV watch the domain stores build on: the current values first
// (unless UpdatesOnly), then each write decoded, a deletion as nil, a value that does
// not decode skipped, what change declines not sent, and the channel closed when ctx
// ends.
func TestWatchJSONDecodesEachChangeAndEndsWithItsContext(t *testing.T) {
	s := streamstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := s.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "watched"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "before", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	type change struct {
		key string
		n   int // -1: deleted
	}
	watch := func(ctx context.Context, opts ...jetstream.WatchOpt) <-chan change {
		t.Helper()
		ch, err := streams.WatchJSON(ctx, kv, ">", func(key string, v *watched) (change, bool) {
			if key == "ignored" {
				return change{}, false
			}
			if v == nil {
				return change{key, -1}, true
			}
			return change{key, v.N}, true
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	wctx, stop := context.WithCancel(ctx)
	all := watch(wctx)
	updates := watch(ctx, jetstream.UpdatesOnly())
	if got := <-all; got != (change{"before", 1}) {
		t.Fatalf("first change %+v, want the current value of before", got)
	}
	for _, op := range []func() error{
		func() error { _, err := kv.Put(ctx, "ignored", []byte(`{"n":9}`)); return err },
		func() error { _, err := kv.Put(ctx, "corrupt", []byte(`{"n":`)); return err },
		func() error { _, err := kv.Put(ctx, "a", []byte(`{"n":2}`)); return err },
		func() error { return kv.Delete(ctx, "a") },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	want := []change{{"a", 2}, {"a", -1}}
	for name, ch := range map[string]<-chan change{"all": all, "updates only": updates} {
		for _, w := range want {
			select {
			case got := <-ch:
				if got != w {
					t.Fatalf("%s: change %+v, want %+v", name, got, w)
				}
			case <-ctx.Done():
				t.Fatalf("%s: no change %+v", name, w)
			}
		}
	}
	stop()
	for range all {
	}
}
