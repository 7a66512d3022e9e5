package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

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
	return cfg, defaultNATSURL(cfg)
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
	nc, err := streams.Dial(cfg.NATSURL, "studio-backup", cfg.NATSCreds)
	if err != nil {
		return err
	}
	defer nc.Close()
	man, err := streams.BackupDir(ctx, nc, dir)
	if err != nil {
		return err
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
	if _, err := streams.ReadBackupManifest(dir); err != nil { // before dialing: a wrong --from says so first
		return err
	}
	nc, err := streams.Dial(cfg.NATSURL, "studio-restore", cfg.NATSCreds)
	if err != nil {
		return err
	}
	defer nc.Close()
	start := time.Now()
	man, total, err := streams.RestoreDir(ctx, nc, dir, replicas, func(s streams.BackupStream, took time.Duration) {
		fmt.Fprintf(stdout, "restored %s: %d messages, last sequence %d (%s)\n", s.Name, s.Messages, s.LastSeq, took.Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d streams (%d bytes) from %s in %s; backup taken %s\n", len(man.Streams), total, dir,
		time.Since(start).Round(time.Millisecond), man.Started.Format(time.RFC3339))
	return nil
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
func (r *s3Target) upload(ctx context.Context, dir string, man *streams.BackupManifest) error {
	var names []string
	for _, s := range man.Streams {
		names = append(names, s.Files()...)
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
	var man streams.BackupManifest
	if err := json.Unmarshal(data, &man); err != nil {
		return fmt.Errorf("%s/backup.json: %w", r.url, err)
	}
	for _, s := range man.Streams {
		for _, name := range s.Files() {
			if err := get(name); err != nil {
				return err
			}
		}
	}
	return nil
}
