package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/blob/s3"
	"github.com/creativeai-studio/studio/streams"
)

const backupUsage = `usage: studio backup --to DIR|s3://BUCKET/PREFIX [--nats-url URL] [--s3-endpoint …]
       studio restore --from DIR|s3://BUCKET/PREFIX [--nats-url URL] [--stream-replicas N]

backup writes a snapshot of every JetStream stream of the account (the pipeline and
event streams, the KV buckets, the object store) to DIR: <stream>.snap (the server's
s2-compressed tar: messages with their headers and sequences, consumer state) and
<stream>.json (configuration and state), and backup.json listing them. Each stream is
snapshot at one point while the cluster keeps serving; the job records (KV_jobs) are
taken first and the object store last, so every job the backup shows finished has its
results in it. restore loads such a directory into a server that has none of its
streams yet (a fresh cluster, before the studio processes start). An s3:// target is
reached with the --s3-endpoint, --s3-access-key, --s3-secret-key flags; backup.json is
uploaded last, so a prefix with it holds a complete backup.`

// backupManifest is DIR/backup.json.
type backupManifest struct {
	Format   int            `json:"format"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Streams  []backupStream `json:"streams"`
}

// backupStream is one stream of a backup.
type backupStream struct {
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"`
	LastSeq  uint64    `json:"last_seq"`
	Bytes    int64     `json:"snapshot_bytes"`
	At       time.Time `json:"at"`
	TookMS   int64     `json:"took_ms"`
}

// backupOrder sorts the streams as a backup takes them: the job records first, then
// the other KV buckets and streams, the object stores last (see backupUsage).
func backupOrder(names []string) {
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

// natsOnly parses the NATS connection flags (and the rest of app.Config, which these
// commands ignore) plus extra, and dials the server without provisioning anything.
func natsOnly(name string, args []string, extra func(*flag.FlagSet)) (*app.Config, error) {
	fs := flag.NewFlagSet("studio "+name, flag.ContinueOnError)
	cfg := &app.Config{}
	cfg.RegisterFlags(fs)
	extra(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), backupUsage+"\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), backupUsage)
	}
	if cfg.NATSURL == "" {
		if cfg.NATSListen == "" {
			return nil, errors.New("--nats-url is required")
		}
		cfg.NATSURL = "nats://" + cfg.NATSListen // a running `studio up`
	}
	return cfg, nil
}

// runBackup is `studio backup`.
func runBackup(ctx context.Context, args []string, stdout io.Writer) error {
	var dir string
	cfg, err := natsOnly("backup", args, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "to", "", "directory to write the backup to (created; must not hold a backup)")
	})
	if err != nil {
		return err
	}
	if dir == "" {
		return errors.New("--to DIR is required\n\n" + backupUsage)
	}
	var remote *s3Target
	if strings.HasPrefix(dir, "s3://") {
		if remote, err = openS3Target(ctx, cfg, dir); err != nil {
			return err
		}
		if _, err := remote.store.Stat(ctx, remote.key("backup.json")); err == nil {
			return fmt.Errorf("%s already holds a backup; choose a new prefix", dir)
		}
		if dir, err = os.MkdirTemp("", "studio-backup-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "backup.json")); err == nil {
		return fmt.Errorf("%s already holds a backup; choose a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	nc, err := streams.Dial(cfg.NATSURL, "studio-backup", cfg.NATSCreds)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var names []string
	lister := js.StreamNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("list the streams: %w", err)
	}
	if len(names) == 0 {
		return errors.New("the server has no streams to back up")
	}
	backupOrder(names)
	man := backupManifest{Format: 1, Started: time.Now().UTC()}
	for _, name := range names {
		bs, err := backupOne(ctx, nc, dir, name)
		if err != nil {
			return err
		}
		man.Streams = append(man.Streams, *bs)
	}
	man.Finished = time.Now().UTC()
	data, _ := json.MarshalIndent(man, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "backup.json"), data, 0o640); err != nil {
		return fmt.Errorf("write backup.json: %w", err)
	}
	if remote != nil {
		if err := remote.upload(ctx, dir, man); err != nil {
			return err
		}
		dir = remote.url
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tLAST SEQ\tBYTES\tTOOK")
	var total int64
	for _, s := range man.Streams {
		total += s.Bytes
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.Messages, s.LastSeq, s.Bytes, time.Duration(s.TookMS)*time.Millisecond)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "backed up %d streams (%d bytes) to %s in %s\n", len(man.Streams), total, dir, man.Finished.Sub(man.Started).Round(time.Millisecond))
	return nil
}

func backupOne(ctx context.Context, nc *nats.Conn, dir, name string) (*backupStream, error) {
	f, err := os.Create(filepath.Join(dir, name+".snap"))
	if err != nil {
		return nil, fmt.Errorf("create %s.snap: %w", name, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	start := time.Now()
	snap, n, err := streams.Snapshot(ctx, nc, name, w)
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
	return &backupStream{Name: name, Messages: st.Msgs, LastSeq: st.LastSeq, Bytes: n, At: start.UTC(), TookMS: time.Since(start).Milliseconds()}, nil
}

// runRestore is `studio restore`.
func runRestore(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		dir      string
		replicas int
	)
	cfg, err := natsOnly("restore", args, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "from", "", "directory written by studio backup")
		fs.IntVar(&replicas, "stream-replicas", 0, "replicas of every restored stream (default: as backed up; 1 to restore a cluster's backup into one server)")
	})
	if err != nil {
		return err
	}
	if dir == "" {
		return errors.New("--from DIR is required\n\n" + backupUsage)
	}
	if strings.HasPrefix(dir, "s3://") {
		remote, err := openS3Target(ctx, cfg, dir)
		if err != nil {
			return err
		}
		local, err := os.MkdirTemp("", "studio-restore-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(local)
		if err := remote.download(ctx, local); err != nil {
			return err
		}
		dir = local
	}
	data, err := os.ReadFile(filepath.Join(dir, "backup.json"))
	if err != nil {
		return fmt.Errorf("%s is not a backup: %w", dir, err)
	}
	var man backupManifest
	if err := json.Unmarshal(data, &man); err != nil || man.Format != 1 {
		return fmt.Errorf("%s/backup.json is not a format-1 backup (%v)", dir, err)
	}
	nc, err := streams.Dial(cfg.NATSURL, "studio-restore", cfg.NATSCreds)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// Refuse before writing anything when any stream exists already.
	for _, s := range man.Streams {
		if _, err := js.Stream(ctx, s.Name); err == nil {
			return fmt.Errorf("stream %s already exists on the server: restore into a fresh cluster, before the studio processes start (or delete the stream first)", s.Name)
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up stream %s: %w", s.Name, err)
		}
	}
	start := time.Now()
	var total int64
	for _, s := range man.Streams {
		t0 := time.Now()
		n, err := restoreOne(ctx, nc, dir, s.Name, replicas)
		if err != nil {
			return err
		}
		total += n
		fmt.Fprintf(stdout, "restored %s: %d messages, last sequence %d (%s)\n", s.Name, s.Messages, s.LastSeq, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "restored %d streams (%d bytes) from %s in %s; backup taken %s\n", len(man.Streams), total, dir,
		time.Since(start).Round(time.Millisecond), man.Started.Format(time.RFC3339))
	return nil
}

func restoreOne(ctx context.Context, nc *nats.Conn, dir, name string, replicas int) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return 0, fmt.Errorf("read %s.json: %w", name, err)
	}
	var snap streams.StreamSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return 0, fmt.Errorf("%s.json: %w", name, err)
	}
	f, err := os.Open(filepath.Join(dir, name+".snap"))
	if err != nil {
		return 0, fmt.Errorf("open %s.snap: %w", name, err)
	}
	defer f.Close()
	info, _ := f.Stat()
	if err := streams.Restore(ctx, nc, &snap, replicas, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// s3Target is a backup under a prefix of an S3 bucket (s3://BUCKET/PREFIX), reached with
// the --s3-* flags. Files are staged in a local temporary directory; backup.json is
// uploaded last, so a prefix that has it holds a complete backup.
type s3Target struct {
	url    string
	prefix string
	store  *s3.Store
}

func openS3Target(ctx context.Context, cfg *app.Config, url string) (*s3Target, error) {
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || prefix == "" {
		return nil, fmt.Errorf("%q: use s3://BUCKET/PREFIX", url)
	}
	if cfg.S3.Endpoint == "" {
		return nil, fmt.Errorf("%s: --s3-endpoint (and its keys) are required for an S3 target", url)
	}
	sc := cfg.S3
	sc.Bucket, sc.CreateBucket = bucket, true
	st, err := s3.New(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &s3Target{url: url, prefix: prefix, store: st}, nil
}

func (r *s3Target) key(name string) string { return r.prefix + "/" + name }

// upload copies the backup in dir to the prefix, backup.json last.
func (r *s3Target) upload(ctx context.Context, dir string, man backupManifest) error {
	var names []string
	for _, s := range man.Streams {
		names = append(names, s.Name+".snap", s.Name+".json")
	}
	for _, name := range append(names, "backup.json") {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		info, err := f.Stat()
		if err == nil {
			_, err = r.store.Put(ctx, r.key(name), f, info.Size(), "application/octet-stream")
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("upload %s to %s: %w", name, r.url, err)
		}
	}
	return nil
}

// download copies a complete backup from the prefix into dir; each object's digest is
// checked as it is read.
func (r *s3Target) download(ctx context.Context, dir string) error {
	get := func(name string) error {
		rc, _, err := r.store.Get(ctx, r.key(name))
		if err != nil {
			return fmt.Errorf("download %s from %s: %w", name, r.url, err)
		}
		defer rc.Close()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return fmt.Errorf("download %s from %s: %w", name, r.url, err)
		}
		return f.Close()
	}
	if err := get("backup.json"); err != nil {
		return fmt.Errorf("%s holds no complete backup: %w", r.url, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "backup.json"))
	if err != nil {
		return err
	}
	var man backupManifest
	if err := json.Unmarshal(data, &man); err != nil {
		return fmt.Errorf("%s/backup.json: %w", r.url, err)
	}
	for _, s := range man.Streams {
		for _, name := range []string{s.Name + ".snap", s.Name + ".json"} {
			if err := get(name); err != nil {
				return err
			}
		}
	}
	return nil
}
