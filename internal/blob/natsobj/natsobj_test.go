package natsobj_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/blobtest"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestObjectStoreConformance(t *testing.T) {
	s := streamstest.Start(t)
	var n atomic.Int32
	blobtest.Run(t, func(t *testing.T) blob.Store {
		bucket := fmt.Sprintf("conformance-%d", n.Add(1))
		if _, err := s.JS.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: bucket}); err != nil {
			t.Fatal(err)
		}
		st, err := natsobj.Open(context.Background(), s.JS, bucket)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestKeysListsDeleteMarkersSoPurgeCanRemoveThem(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	st, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	const key = "work/01jobid/input.f32"
	if _, err := st.Put(ctx, key, bytes.NewReader([]byte("x")), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	keys, err := st.Keys(ctx, "work/01jobid/")
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("Keys after Delete = %q, %v; want the deleted key, whose marker remains", keys, err)
	}
	if err := st.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}
	if keys, err := st.Keys(ctx, "work/"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys after Purge = %q, %v; want none", keys, err)
	}
}

func TestPurgeLeavesNoMessageNamingTheKey(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	st, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	const key = "inputs/acme/01jobid/original.png"
	body := []byte("pixels")
	if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), "image/png"); err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}
	stream, err := s.JS.Stream(ctx, "OBJ_"+natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages remain in the object store's stream after Purge, want none (Delete leaves a marker naming the key)", info.State.Msgs)
	}
}

func TestStreamConfigIsNatsGosWithDirectGetOff(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	if _, err := s.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "lib", Description: "input images, intermediate tensors and results", Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsobj.Open(ctx, s.JS, "ours"); err != nil {
		t.Fatal(err)
	}
	config := func(name string) jetstream.StreamConfig {
		st, err := s.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config
	}
	want, got := config("OBJ_lib"), config("OBJ_ours")
	if !want.AllowDirect || got.AllowDirect {
		t.Errorf("AllowDirect: nats.go %v, ours %v; want true and false", want.AllowDirect, got.AllowDirect)
	}
	want.Name, want.Subjects, want.AllowDirect = got.Name, got.Subjects, false
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config differs from nats.go's:\n got %+v\nwant %+v", got, want)
	}
}
