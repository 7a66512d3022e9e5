package natsobj_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// TestPutOfANewKeyIsAnOrdinaryObjectAndReplacingLeavesNoChunks puts objects from
// memory (Put's path for a declared size up to 1 MiB: no lookup first, acks awaited
// together): the object store's own API reads them with their digest, sizes of one
// and several chunks included; putting a key again, or after its delete, replaces the
// object and leaves only the new object's chunks in the stream.
func TestPutOfANewKeyIsAnOrdinaryObjectAndReplacingLeavesNoChunks(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	st, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := s.JS.ObjectStore(ctx, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	body := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7) + seed
		}
		return b
	}
	chunks := func() uint64 {
		t.Helper()
		stream, err := s.JS.Stream(ctx, "OBJ_"+natsobj.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("$O."+natsobj.Bucket+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	for _, size := range []int{0, 50_000, 128 << 10, 300_000} {
		key := fmt.Sprintf("inputs/acme/job%d/original.png", size)
		data := body(size, 1)
		var r io.Reader = bytes.NewReader(data)
		if size == 50_000 {
			r = blob.NewBytesReader(data) // handed over without a copy
		}
		info, err := st.Put(ctx, key, r, int64(size), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if info.Size != int64(size) || info.SHA256 != hex.EncodeToString(sum[:]) || info.ContentType != "image/png" {
			t.Fatalf("%d bytes: Put answered %+v", size, info)
		}
		got, err := obs.GetBytes(ctx, key) // the object store verifies the digest
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: the object store reads back %d bytes, %v", size, len(got), err)
		}
	}
	before := chunks()

	const key = "inputs/acme/again/original.png"
	for i, size := range []int{300_000, 40_000, 200_000} {
		if i == 2 {
			if err := st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		data := body(size, byte(i))
		if _, err := st.Put(ctx, key, bytes.NewReader(data), int64(size), "image/png"); err != nil {
			t.Fatal(err)
		}
		if got, err := obs.GetBytes(ctx, key); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("put %d: reads back %d bytes, %v", i, len(got), err)
		}
	}
	if got, want := chunks(), before+2; got != want {
		t.Errorf("%d chunk messages after replacing an object twice, want %d: a replaced object's chunks stayed", got, want)
	}

	if _, err := st.Put(ctx, "inputs/acme/short", bytes.NewReader([]byte("abc")), 4, ""); err == nil {
		t.Error("a body shorter than its declared size was stored")
	}
	if _, err := st.Put(ctx, "inputs/acme/long", bytes.NewReader([]byte("abcde")), 4, ""); err == nil {
		t.Error("a body longer than its declared size was stored")
	}
	if _, err := st.Put(ctx, "inputs/acme/long", blob.NewBytesReader([]byte("abcde")), 4, ""); err == nil {
		t.Error("a BytesReader longer than its declared size was stored")
	}
}

// TestACallCutOffFromItsServerFailsWithinItsOwnTimeout cuts the connection between the
// client and a real server (a proxy stops forwarding; the TCP connection stays open,
// as with a paused or partitioned node) and checks that every call fails after the
// store's own per-call bound, not after its caller's much longer deadline (a stage's
// 1 to 5 minutes), so the stage retries instead of failing the job as too slow; and
// that the store works again once the connection does.
func TestACallCutOffFromItsServerFailsWithinItsOwnTimeout(t *testing.T) {
	s := streamstest.Start(t)
	px := streamstest.StartProxy(t, strings.TrimPrefix(s.Embedded.ClientURL(), "nats://"))
	nc, err := nats.Connect("nats://" + px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a stage's deadline
	defer cancel()
	st, err := natsobj.Open(ctx, js, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	const key = "work/01jobid/input.f32"
	data := bytes.Repeat([]byte("tensor"), 1000)
	if _, err := st.Put(ctx, key, bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	const bound = 300 * time.Millisecond
	natsobj.SetCallTimeout(t, bound)
	px.Hold(streamstest.Both)
	calls := map[string]func() error{
		"get": func() error {
			r, _, err := st.Get(ctx, key)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			return err
		},
		"stat": func() error { _, err := st.Stat(ctx, key); return err },
		"put": func() error {
			_, err := st.Put(ctx, "work/01jobid/other", bytes.NewReader(data), int64(len(data)), "")
			return err
		},
		"delete": func() error { return st.Delete(ctx, key) },
	}
	for name, call := range calls {
		began := time.Now()
		err := call()
		took := time.Since(began)
		if err == nil {
			t.Errorf("%s succeeded with the server cut off", name)
		}
		if took > 10*bound+2*time.Second {
			t.Errorf("%s took %s with the server cut off; want about its own bound %s, not the caller's deadline", name, took, bound)
		}
	}
	px.Hold(0)
	natsobj.SetCallTimeout(t, 15*time.Second)
	r, _, err := st.Get(ctx, key)
	if err != nil {
		t.Fatalf("get once the connection works again: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read once the connection works again: %v (%d bytes, want %d)", err, len(got), len(data))
	}
}

// TestASmallObjectIsReadWithTwoRequests checks the read of a one-chunk object: two
// JetStream API requests (its metadata, its chunk) where the object store's Get makes
// three before the first byte (the metadata twice, an ordered consumer) and deletes the
// consumer after; the same bytes and info for objects on both sides of the bound; a
// deleted object is not found.
func TestASmallObjectIsReadWithTwoRequests(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	st, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// Every JetStream API request, seen by a subscriber: a channel subscription is fed
	// by the connection's reader, so after a Flush every earlier request is in it.
	requests := make(chan *nats.Msg, 1024)
	sub, err := s.NC.ChanSubscribe("$JS.API.>", requests)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	apiCalls := func() int {
		t.Helper()
		if err := s.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for len(requests) > 0 {
			<-requests
			n++
		}
		return n
	}
	for _, size := range []int{0, 1, 300, 64 << 10, 64<<10 + 1, 200_000} {
		key := fmt.Sprintf("work/job%d/output.png", size)
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 13)
		}
		put, err := st.Put(ctx, key, bytes.NewReader(data), int64(size), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		apiCalls()
		rc, info, err := st.Get(ctx, key)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		calls := apiCalls()
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes, %v", size, len(got), err)
		}
		if info.Size != put.Size || info.SHA256 != put.SHA256 || info.ContentType != "image/png" || info.Key != key {
			t.Errorf("%d bytes: Get's info %+v, Put's %+v", size, info, put)
		}
		if size > 0 && size <= 64<<10 && calls != 2 {
			t.Errorf("%d bytes: %d JetStream API requests to read, want 2", size, calls)
		}
		if err := st.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Get(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("%d bytes: Get after Delete: %v, want blob.ErrNotFound", size, err)
		}
	}
}
