package streams

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BackupManifest is DIR/backup.json: the streams of a backup written by BackupDir.
type BackupManifest struct {
	Format   int            `json:"format"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Streams  []BackupStream `json:"streams"`
}

// BackupStream is one stream of a backup: DIR/<Name>.snap and DIR/<Name>.json.
type BackupStream struct {
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"`
	LastSeq  uint64    `json:"last_seq"`
	Bytes    int64     `json:"snapshot_bytes"`
	At       time.Time `json:"at"`
	TookMS   int64     `json:"took_ms"`
}

// Files are the file names of the stream in a backup directory.
func (s BackupStream) Files() []string { return []string{s.Name + ".snap", s.Name + ".json"} }

// backupFormat is the version of the directory layout BackupDir writes.
const backupFormat = 1

// BackupOrder sorts stream names as a backup takes them: the job records (KV_jobs)
// first, then the other KV buckets and streams, the object stores last, so every job the
// backup shows finished has its results in it.
func BackupOrder(names []string) {
	rank := func(n string) int {
		switch {
		case n == "KV_jobs":
			return 0
		case strings.HasPrefix(n, "KV_"):
			return 1
		case strings.HasPrefix(n, "OBJ_"):
			return 3
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
}

// BackupDir snapshots every stream of the account into dir (which must not hold a
// backup yet) in BackupOrder, while the server keeps serving, and writes backup.json
// last. It blocks until every stream is written or ctx ends.
func BackupDir(ctx context.Context, nc *nats.Conn, dir string) (*BackupManifest, error) {
	if _, err := os.Stat(filepath.Join(dir, "backup.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a backup; choose a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	var names []string
	lister := js.StreamNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list the streams: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("the server has no streams to back up")
	}
	BackupOrder(names)
	man := &BackupManifest{Format: backupFormat, Started: time.Now().UTC()}
	for _, name := range names {
		bs, err := backupOne(ctx, nc, dir, name)
		if err != nil {
			return nil, err
		}
		man.Streams = append(man.Streams, *bs)
	}
	man.Finished = time.Now().UTC()
	data, _ := json.MarshalIndent(man, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "backup.json"), data, 0o640); err != nil {
		return nil, fmt.Errorf("write backup.json: %w", err)
	}
	return man, nil
}

func backupOne(ctx context.Context, nc *nats.Conn, dir, name string) (*BackupStream, error) {
	f, err := os.Create(filepath.Join(dir, name+".snap"))
	if err != nil {
		return nil, fmt.Errorf("create %s.snap: %w", name, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now()
	snap, n, err := Snapshot(ctx, nc, name, w)
	if err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("write %s.snap: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write %s.snap: %w", name, err)
	}
	data, _ := json.MarshalIndent(snap, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o640); err != nil {
		return nil, fmt.Errorf("write %s.json: %w", name, err)
	}
	var st struct {
		Msgs    uint64 `json:"messages"`
		LastSeq uint64 `json:"last_seq"`
	}
	_ = json.Unmarshal(snap.State, &st)
	return &BackupStream{Name: name, Messages: st.Msgs, LastSeq: st.LastSeq, Bytes: n, At: start.UTC(), TookMS: time.Since(start).Milliseconds()}, nil
}

// ReadBackupManifest reads dir/backup.json and checks its format.
func ReadBackupManifest(dir string) (*BackupManifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "backup.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a backup: %w", dir, err)
	}
	var man BackupManifest
	if err := json.Unmarshal(data, &man); err != nil || man.Format != backupFormat {
		return nil, fmt.Errorf("%s/backup.json is not a format-%d backup (%v)", dir, backupFormat, err)
	}
	return &man, nil
}

// RestoreDir loads the backup in dir into a server that has none of its streams (it
// refuses before writing anything otherwise). replicas, when positive, replaces each
// stream's replica count. each, when not nil, is called after every stream with how
// long it took. It returns the snapshot bytes loaded and blocks until done or ctx ends.
func RestoreDir(ctx context.Context, nc *nats.Conn, dir string, replicas int, each func(BackupStream, time.Duration)) (*BackupManifest, int64, error) {
	man, err := ReadBackupManifest(dir)
	if err != nil {
		return nil, 0, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, 0, fmt.Errorf("jetstream: %w", err)
	}
	for _, s := range man.Streams {
		if _, err := js.Stream(ctx, s.Name); err == nil {
			return nil, 0, fmt.Errorf("stream %s already exists on the server: restore into a fresh cluster, before the studio processes start (or delete the stream first)", s.Name)
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, 0, fmt.Errorf("look up stream %s: %w", s.Name, err)
		}
	}
	var total int64
	for _, s := range man.Streams {
		t0 := time.Now()
		n, err := restoreOne(ctx, nc, dir, s.Name, replicas)
		if err != nil {
			return nil, total, err
		}
		total += n
		if each != nil {
			each(s, time.Since(t0))
		}
	}
	return man, total, nil
}

func restoreOne(ctx context.Context, nc *nats.Conn, dir, name string, replicas int) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return 0, fmt.Errorf("read %s.json: %w", name, err)
	}
	var snap StreamSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return 0, fmt.Errorf("%s.json: %w", name, err)
	}
	f, err := os.Open(filepath.Join(dir, name+".snap"))
	if err != nil {
		return 0, fmt.Errorf("open %s.snap: %w", name, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("open %s.snap: %w", name, err)
	}
	if err := Restore(ctx, nc, &snap, replicas, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return 0, err
	}
	return info.Size(), nil
}
