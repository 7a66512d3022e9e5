package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3 multipart limits: every part but the last is at least 5 MiB, none above 5 GiB.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
)

// Config says which S3 API server and bucket a Store uses. The zero PartSize lets
// minio-go pick one (16 MiB, growing for objects too large for 10,000 parts).
type Config struct {
	// Endpoint is host[:port] without a scheme, e.g. "s3.eu-west-1.amazonaws.com" or
	// "127.0.0.1:9000".
	Endpoint string
	Bucket   string
	// AccessKey and SecretKey are static credentials. Leave both empty to read them from
	// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, MINIO_ROOT_USER/MINIO_ROOT_PASSWORD or
	// the instance's IAM role (including Kubernetes web identity), in that order.
	AccessKey string
	SecretKey string
	// Region is sent in signatures; empty means ask the server (one extra request per
	// bucket, cached).
	Region string
	UseTLS bool
	// CreateBucket makes New create a missing bucket instead of failing.
	CreateBucket bool
	// PartSize is the multipart upload part size in bytes: 0, or 5 MiB to 5 GiB.
	PartSize uint64
	// RetryFor is how long a Get, Stat, Delete or Put that fails because the server is
	// unavailable (connection refused, reset or timed out, HTTP 5xx or 503 SlowDown) is
	// tried again, with exponential backoff, before it fails wrapping
	// blob.ErrUnavailable. 0 does not retry (minio-go's own quick retries remain).
	RetryFor time.Duration
}

// Validate reports every problem with c at once, each saying how to fix it.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Endpoint == "":
		errs = append(errs, errors.New("s3: Endpoint is empty; set it to the server's host[:port]"))
	case strings.Contains(c.Endpoint, "://"):
		errs = append(errs, fmt.Errorf("s3: Endpoint %q has a scheme; give host[:port] only and set UseTLS for https", c.Endpoint))
	default:
		if u, err := url.Parse("http://" + c.Endpoint); err != nil || u.Host != c.Endpoint {
			errs = append(errs, fmt.Errorf("s3: Endpoint %q is not host[:port]; drop any path, query or user info", c.Endpoint))
		}
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("s3: Bucket %q is not a valid S3 bucket name (3-63 lower-case letters, digits, '-' and '.'): %v", c.Bucket, err))
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("s3: set both AccessKey and SecretKey, or neither to use credentials from the environment"))
	}
	if c.PartSize != 0 && (c.PartSize < minPartSize || c.PartSize > maxPartSize) {
		errs = append(errs, fmt.Errorf("s3: PartSize %d is outside S3's limits; use 0 (automatic) or 5 MiB to 5 GiB", c.PartSize))
	}
	if c.RetryFor < 0 {
		errs = append(errs, fmt.Errorf("s3: RetryFor %s is negative; use 0 (no retries) or a duration such as 30s", c.RetryFor))
	}
	return errors.Join(errs...)
}
