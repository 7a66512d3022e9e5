package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/blobtest"
)

const skipMessage = "STUDIO_TEST_S3_ENDPOINT is not set, so the S3 tests have no server: run `make test`, " +
	"which starts MinIO, or `eval \"$(scripts/minio.sh start)\"` before `go test` (and `scripts/minio.sh stop` after)"

// testConfig returns a config for the server in STUDIO_TEST_S3_* with a bucket name no
// other test uses, or skips t.
func testConfig(t testing.TB) Config {
	t.Helper()
	skipWithoutServer(t)
	return Config{
		Endpoint:     os.Getenv("STUDIO_TEST_S3_ENDPOINT"),
		Bucket:       "studio-test-" + strings.ToLower(rand.Text()[:16]),
		AccessKey:    os.Getenv("STUDIO_TEST_S3_ACCESS_KEY"),
		SecretKey:    os.Getenv("STUDIO_TEST_S3_SECRET_KEY"),
		CreateBucket: true,
	}
}

func skipWithoutServer(t testing.TB) {
	t.Helper()
	if os.Getenv("STUDIO_TEST_S3_ENDPOINT") == "" {
		if os.Getenv("STUDIO_REQUIRE_S3") == "1" {
			t.Fatal("STUDIO_REQUIRE_S3=1 but no S3 server is configured: " + skipMessage)
		}
		t.Skip(skipMessage)
	}
}

// newTestStore opens a store on a fresh bucket and removes the bucket when t ends.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	cfg := testConfig(t)
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { removeBucket(t, s) })
	return s
}

func removeBucket(t testing.TB, s *Store) {
	// t.Context is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objects := s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Recursive: true})
	for rerr := range s.client.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		t.Logf("removing %s from test bucket %s: %v", rerr.ObjectName, s.bucket, rerr.Err)
	}
	if err := s.client.RemoveBucket(ctx, s.bucket); err != nil {
		t.Logf("removing test bucket %s: %v", s.bucket, err)
	}
}

func TestStoreConformance(t *testing.T) {
	skipWithoutServer(t)
	blobtest.Run(t, func(t *testing.T) blob.Store { return newTestStore(t) })
}

func TestConfigValidate(t *testing.T) {
	valid := Config{Endpoint: "127.0.0.1:9000", Bucket: "studio", AccessKey: "a", SecretKey: "b"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" means valid
	}{
		{"a complete config is valid", func(*Config) {}, ""},
		{"a DNS endpoint with TLS is valid", func(c *Config) { c.Endpoint, c.UseTLS = "s3.eu-west-1.amazonaws.com", true }, ""},
		{"empty credentials are valid (taken from the environment)", func(c *Config) { c.AccessKey, c.SecretKey = "", "" }, ""},
		{"a 5 MiB part size is valid", func(c *Config) { c.PartSize = 5 << 20 }, ""},
		{"an empty endpoint is rejected", func(c *Config) { c.Endpoint = "" }, "Endpoint is empty"},
		{"an endpoint with a scheme is rejected", func(c *Config) { c.Endpoint = "https://s3.example" }, "has a scheme"},
		{"an endpoint with a path is rejected", func(c *Config) { c.Endpoint = "s3.example/bucket" }, "not host[:port]"},
		{"an upper-case bucket is rejected", func(c *Config) { c.Bucket = "Studio" }, "not a valid S3 bucket name"},
		{"an empty bucket is rejected", func(c *Config) { c.Bucket = "" }, "not a valid S3 bucket name"},
		{"an access key without a secret is rejected", func(c *Config) { c.SecretKey = "" }, "both AccessKey and SecretKey"},
		{"a 1 MiB part size is rejected", func(c *Config) { c.PartSize = 1 << 20 }, "PartSize"},
		{"a 6 GiB part size is rejected", func(c *Config) { c.PartSize = 6 << 30 }, "PartSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewNamesEndpointAndBucketWhenTheBucketIsMissing(t *testing.T) {
	cfg := testConfig(t)
	cfg.CreateBucket = false
	_, err := New(t.Context(), cfg)
	if err == nil {
		t.Fatal("New succeeded on a bucket that does not exist")
	}
	for _, want := range []string{cfg.Endpoint, cfg.Bucket, "CreateBucket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q does not mention %q", err, want)
		}
	}
}

func TestNewTakesCredentialsFromTheEnvironmentWhenConfigHasNone(t *testing.T) {
	cfg := testConfig(t)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("MINIO_ROOT_USER", cfg.AccessKey)
	t.Setenv("MINIO_ROOT_PASSWORD", cfg.SecretKey)
	cfg.AccessKey, cfg.SecretKey = "", ""
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New with credentials from MINIO_ROOT_USER/MINIO_ROOT_PASSWORD: %v", err)
	}
	t.Cleanup(func() { removeBucket(t, s) })
	if _, err := s.Put(t.Context(), "k", strings.NewReader("v"), 1, "text/plain"); err != nil {
		t.Errorf("Put: %v", err)
	}
}

func TestNewNamesEndpointWhenTheServerIsUnreachable(t *testing.T) {
	// Port 1 on loopback refuses connections; minio-go retries until ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Endpoint: "127.0.0.1:1", Bucket: "studio", AccessKey: "a", SecretKey: "b"})
	if err == nil {
		t.Fatal("New succeeded against a closed port")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), `"studio"`) {
		t.Errorf("New error %q does not name the endpoint and bucket", err)
	}
}

// Results and inputs are downloaded through ingest, which checks the caller's tenant,
// audits the download, verifies the object's digest and stops serving a file the
// moment its user is erased or its key revoked. A presigned S3 GET does none of that
// and works until it expires, so the store does not hand one out.
func TestTheStoreHandsOutNoDownloadURLs(t *testing.T) {
	var store any = (*Store)(nil)
	if _, ok := store.(interface {
		PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
	}); ok {
		t.Error("the S3 store signs download URLs that bypass ingest's access checks")
	}
}

func TestSetWorkExpiryInstallsOneRuleAndKeepsOthers(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()

	err := s.SetWorkExpiry(ctx, "work/", 1)
	if errors.Is(err, ErrLifecycleUnsupported) {
		t.Skipf("this server has no lifecycle rules: %v", err)
	}
	if err != nil {
		t.Fatalf("SetWorkExpiry: %v", err)
	}

	// A rule someone else installed must survive our updates.
	cfg, err := s.client.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		t.Fatalf("GetBucketLifecycle: %v", err)
	}
	other := cfg.Rules[0]
	other.ID, other.RuleFilter.Prefix, other.Expiration.Days = "operator-logs", "logs/", 30
	cfg.Rules = append(cfg.Rules, other)
	if err := s.client.SetBucketLifecycle(ctx, s.bucket, cfg); err != nil {
		t.Fatalf("SetBucketLifecycle: %v", err)
	}

	if err := s.SetWorkExpiry(ctx, "work/", 2); err != nil {
		t.Fatalf("second SetWorkExpiry: %v", err)
	}
	cfg, err = s.client.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		t.Fatalf("GetBucketLifecycle: %v", err)
	}
	days := map[string]int{}
	for _, r := range cfg.Rules {
		if r.Status != "Enabled" {
			t.Errorf("rule %q is %q, want Enabled", r.ID, r.Status)
		}
		days[r.RuleFilter.Prefix] = int(r.Expiration.Days)
	}
	if want := map[string]int{"work/": 2, "logs/": 30}; fmt.Sprint(days) != fmt.Sprint(want) {
		t.Errorf("lifecycle rules expire %v (prefix: days), want %v", days, want)
	}

	if err := s.SetWorkExpiry(ctx, "", 1); err == nil {
		t.Error("SetWorkExpiry accepted an empty prefix, which would expire the whole bucket")
	}
}

func TestGetReportsContentThatDoesNotMatchItsRecordedDigest(t *testing.T) {
	s := newTestStore(t)
	data := []byte("the real content")
	wrong := sha256.Sum256([]byte("something else"))
	// Write as another tool would, with a digest that does not match.
	_, err := s.client.PutObject(t.Context(), s.bucket, "k", bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: map[string]string{metaSHA256: hex.EncodeToString(wrong[:])}})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	rc, _, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("reading a body that does not match its digest: err = %v, want ErrDigestMismatch", err)
	}
}

func TestSpool(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5}, spoolMemoryLimit+12345)
	small := []byte("0123456789")
	tests := []struct {
		name     string
		r        func() io.Reader
		size     int64
		want     []byte
		wantFile bool
	}{
		{"a small stream of known size stays in memory", stream(small), 10, small, false},
		{"a small stream of unknown size stays in memory", stream(small), -1, small, false},
		{"a stream just over the limit goes to a temp file", stream(big), int64(len(big)), big, true},
		{"a large stream of unknown size goes to a temp file", stream(big), -1, big, true},
		{"a seekable body is read in place", func() io.Reader { return bytes.NewReader(big) }, -1, big, false},
		{"a seekable body is read from its current offset", func() io.Reader {
			r := strings.NewReader("skip:" + string(small))
			_, _ = r.Seek(5, io.SeekStart)
			return r
		}, -1, small, false},
		{"only the declared size is read", stream(small), 4, small[:4], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := spool(t.Context(), tc.r(), tc.size, dir)
			if err != nil {
				t.Fatalf("spool: %v", err)
			}
			if (b.file != nil) != tc.wantFile {
				t.Errorf("spooled to a file: %v, want %v", b.file != nil, tc.wantFile)
			}
			got, err := io.ReadAll(b.r)
			if err != nil {
				t.Fatalf("reading the spooled body: %v", err)
			}
			wantSum := sha256.Sum256(tc.want)
			if !bytes.Equal(got, tc.want) || b.size != int64(len(tc.want)) || b.sha256 != hex.EncodeToString(wantSum[:]) {
				t.Errorf("spooled %d bytes (size %d, sha256 %s), want %d bytes with sha256 %x",
					len(got), b.size, b.sha256, len(tc.want), wantSum)
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
				t.Errorf("Close left temp files behind: %v", left)
			}
		})
	}
}

func TestSpoolRejectsAShortBody(t *testing.T) {
	for _, r := range []io.Reader{stream([]byte("short"))(), bytes.NewReader([]byte("short"))} {
		_, err := spool(t.Context(), r, 10, t.TempDir())
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("spool(%T of 5 bytes, size 10): err = %v, want io.ErrUnexpectedEOF", r, err)
		}
	}
}

// stream hides everything but Read, so spool cannot take the in-place path.
func stream(data []byte) func() io.Reader {
	return func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }
}

// Throughput for the pipeline's typical object: 50 KB, 8 workers, as in DESIGN.md.
func BenchmarkPut50KB(b *testing.B) {
	s := newTestStore(b)
	data := make([]byte, 50_000)
	_, _ = rand.Read(data)
	b.SetBytes(int64(len(data)))
	runWorkers(b, 8, func(i int) error {
		_, err := s.Put(context.Background(), fmt.Sprintf("bench/%d", i), bytes.NewReader(data), int64(len(data)), "image/png")
		return err
	})
}

func BenchmarkGet50KB(b *testing.B) {
	s := newTestStore(b)
	data := make([]byte, 50_000)
	_, _ = rand.Read(data)
	const objects = 256
	for i := range objects {
		if _, err := s.Put(b.Context(), fmt.Sprintf("bench/%d", i), bytes.NewReader(data), int64(len(data)), "image/png"); err != nil {
			b.Fatalf("Put: %v", err)
		}
	}
	b.SetBytes(int64(len(data)))
	runWorkers(b, 8, func(i int) error {
		rc, _, err := s.Get(context.Background(), fmt.Sprintf("bench/%d", i%objects))
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	})
}

// runWorkers calls op(0..b.N-1) from exactly `workers` goroutines, whatever GOMAXPROCS
// is, and reports objects/s.
func runWorkers(b *testing.B, workers int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}
