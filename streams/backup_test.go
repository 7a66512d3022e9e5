package streams_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

// bare is an embedded server with nothing provisioned (a fresh cluster).
func bare(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect("backup-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// roundTrip snapshots stream on src and restores it on dst; it returns the snapshot.
func roundTrip(t testing.TB, src, dst *nats.Conn, stream string) *streams.StreamSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	snap, n, err := streams.Snapshot(ctx, src, stream, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Snapshot reported %d bytes, wrote %d", n, buf.Len())
	}
	if err := streams.Restore(ctx, dst, snap, 0, &buf); err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestASnapshotRestoresEveryMessageHeaderKeyAndObject: a stream written to while it is
// snapshot comes back exactly as it was at the snapshot's last sequence (subjects,
// headers, data, sequences); a KV bucket keeps its values, history and revisions; an
// object store its objects byte for byte. A stream that exists already is refused.
func TestASnapshotRestoresEveryMessageHeaderKeyAndObject(t *testing.T) {
	ctx := context.Background()
	srcNC, src := bare(t)
	dstNC, dst := bare(t)

	ev, err := src.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(i int) error {
		m := nats.NewMsg("ev." + strconv.Itoa(i%7))
		m.Header.Set("Studio-Job-Id", "job-"+strconv.Itoa(i))
		m.Header.Set(jetstream.MsgIDHeader, "msg-"+strconv.Itoa(i))
		m.Data = []byte(strings.Repeat("x", i%300))
		_, err := src.PublishMsg(ctx, m)
		return err
	}
	for i := range 500 {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := src.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs", History: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		for v := range 2 {
			if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d-%d", i, v))); err != nil {
				t.Fatal(err)
			}
		}
	}
	obs, err := src.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "studio"})
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	for i, size := range []int{0, 1, 128 << 10, 700 << 10, 3 << 20} {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		name := fmt.Sprintf("results/t/job%d/image.png", i)
		blobs[name] = b
		if _, err := obs.PutBytes(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}

	// Writes go on while EV is snapshot.
	var (
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		written atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 500; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if publish(i) == nil {
				written.Add(1)
			}
		}
	}()
	snap := roundTrip(t, srcNC, dstNC, "EV")
	close(stop)
	wg.Wait()
	roundTrip(t, srcNC, dstNC, "KV_jobs")
	roundTrip(t, srcNC, dstNC, "OBJ_studio")

	t.Run("the stream is as it was at the snapshot, headers and sequences included", func(t *testing.T) {
		got, err := dst.Stream(ctx, "EV")
		if err != nil {
			t.Fatal(err)
		}
		info, err := got.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(snap.State, []byte(fmt.Sprintf(`"last_seq":%d`, info.State.LastSeq))) {
			t.Fatalf("restored last sequence %d, snapshot state %s", info.State.LastSeq, snap.State)
		}
		if info.State.LastSeq < 500 {
			t.Fatalf("restored %d messages, want at least the 500 written before", info.State.LastSeq)
		}
		t.Logf("%d messages written during the snapshot; it holds up to sequence %d", written.Load(), info.State.LastSeq)
		for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
			want, err := ev.GetMsg(ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			have, err := got.GetMsg(ctx, seq)
			if err != nil {
				t.Fatalf("restored seq %d: %v", seq, err)
			}
			if have.Subject != want.Subject || !bytes.Equal(have.Data, want.Data) || have.Header.Get("Studio-Job-Id") != want.Header.Get("Studio-Job-Id") || !have.Time.Equal(want.Time) {
				t.Fatalf("seq %d differs: %s %q %v, want %s %q %v", seq, have.Subject, have.Header, have.Time, want.Subject, want.Header, want.Time)
			}
		}
	})
	t.Run("the KV bucket keeps its values, history and revisions", func(t *testing.T) {
		got, err := dst.KeyValue(ctx, "jobs")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			key := fmt.Sprintf("k%d", i)
			want, _ := kv.Get(ctx, key)
			have, err := got.Get(ctx, key)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if !bytes.Equal(have.Value(), want.Value()) || have.Revision() != want.Revision() {
				t.Fatalf("%s = %q rev %d, want %q rev %d", key, have.Value(), have.Revision(), want.Value(), want.Revision())
			}
			hist, err := got.History(ctx, key)
			if err != nil || len(hist) != 2 {
				t.Fatalf("%s history: %d entries (%v), want 2", key, len(hist), err)
			}
		}
		// A compare-and-swap against the restored revision works.
		e, _ := got.Get(ctx, "k0")
		if _, err := got.Update(ctx, "k0", []byte("after"), e.Revision()); err != nil {
			t.Fatalf("update at the restored revision: %v", err)
		}
	})
	t.Run("the object store keeps every object byte for byte", func(t *testing.T) {
		got, err := dst.ObjectStore(ctx, "studio")
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range blobs {
			have, err := got.GetBytes(ctx, name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(have, want) {
				t.Fatalf("%s: %d bytes differ from the %d written", name, len(have), len(want))
			}
		}
	})
	t.Run("a stream that exists already is refused", func(t *testing.T) {
		var buf bytes.Buffer
		snap, _, err := streams.Snapshot(ctx, srcNC, "KV_jobs", &buf)
		if err != nil {
			t.Fatal(err)
		}
		err = streams.Restore(ctx, dstNC, snap, 0, &buf)
		if err == nil || !strings.Contains(err.Error(), "already") {
			t.Fatalf("Restore over an existing stream = %v, want an error saying it exists", err)
		}
	})
	t.Run("a stream that does not exist cannot be snapshot", func(t *testing.T) {
		_, _, err := streams.Snapshot(ctx, srcNC, "NOPE", io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("Snapshot of a missing stream = %v, want not found", err)
		}
	})
}

// BenchmarkSnapshotAndRestore measures the recovery time of an object store of
// BACKUP_BENCH_MB MiB (default 64) in 1 MiB objects plus 10,000 job records: snapshot
// to a file and restore into a fresh server, both on this machine's disk.
func BenchmarkSnapshotAndRestore(b *testing.B) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("BACKUP_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	ctx := context.Background()
	srcNC, src := bare(b)
	obs, err := src.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "studio"})
	if err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, 1<<20)
	for i := range mb {
		_, _ = rand.Read(blob)
		if _, err := obs.PutBytes(ctx, fmt.Sprintf("results/t/job%d/image.png", i), blob); err != nil {
			b.Fatal(err)
		}
	}
	kv, err := src.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "jobs"})
	if err != nil {
		b.Fatal(err)
	}
	rec := bytes.Repeat([]byte("r"), 1500) // about a job record's size
	for i := range 10000 {
		if _, err := kv.Put(ctx, fmt.Sprintf("job%d", i), rec); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	var snapTime, restTime time.Duration
	var size int64
	b.ResetTimer()
	for i := range b.N {
		dstNC, _ := bare(b)
		for _, stream := range []string{"KV_jobs", "OBJ_studio"} {
			path := fmt.Sprintf("%s/%s-%d.snap", dir, stream, i)
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			snap, n, err := streams.Snapshot(ctx, srcNC, stream, f)
			if err == nil {
				err = f.Sync()
			}
			_ = f.Close()
			if err != nil {
				b.Fatal(err)
			}
			snapTime += time.Since(t0)
			size += n
			f, err = os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			t0 = time.Now()
			if err := streams.Restore(ctx, dstNC, snap, 0, f); err != nil {
				b.Fatal(err)
			}
			restTime += time.Since(t0)
			_ = f.Close()
		}
	}
	b.StopTimer()
	data := float64(mb) + 10000*1500/float64(1<<20)
	b.ReportMetric(data, "MiB_data")
	b.ReportMetric(float64(size)/float64(b.N)/(1<<20), "MiB_snapshot")
	b.ReportMetric(snapTime.Seconds()/float64(b.N), "s_backup")
	b.ReportMetric(restTime.Seconds()/float64(b.N), "s_restore")
}
