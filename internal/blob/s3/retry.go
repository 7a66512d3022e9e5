package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/creativeai-studio/studio/internal/blob"
)

// DefaultRetryFor is how long a Store made by the server keeps retrying a call while
// the S3 server is unavailable (the --s3-retry-for default).
const DefaultRetryFor = 30 * time.Second

// First and largest wait between tries of a call to an unavailable server.
const (
	retryFirst = 200 * time.Millisecond
	retryMost  = 4 * time.Second
)

// retry runs op until it succeeds, fails for a reason other than the server being
// unavailable, s.retryFor has passed since the first try, or ctx is done, waiting
// retryFirst, then twice as long each time (at most retryMost) between tries. Only
// idempotent operations go through it. A wait that ends unsuccessfully because the
// server stayed unavailable (the bound passed, or ctx ended during the outage) returns
// an error wrapping blob.ErrUnavailable, so that callers can tell "the store is down,
// try again later" from the work itself being too slow.
func (s *Store) retry(ctx context.Context, op func() error) error {
	start := time.Now()
	wait := retryFirst
	for tries := 1; ; tries++ {
		err := op()
		if err == nil || !unavailable(err) {
			if err != nil && tries > 1 && ctx.Err() != nil {
				// ctx ended while we waited out an outage: the store was the reason.
				return fmt.Errorf("%w after %d tries in %s: %w", blob.ErrUnavailable, tries, time.Since(start).Round(time.Millisecond), err)
			}
			return err
		}
		left := s.retryFor - time.Since(start)
		if left <= 0 || ctx.Err() != nil {
			return fmt.Errorf("%w after %d tries in %s: %w", blob.ErrUnavailable, tries, time.Since(start).Round(time.Millisecond), err)
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w after %d tries in %s, then %w: %w", blob.ErrUnavailable, tries, time.Since(start).Round(time.Millisecond), ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, retryMost)
	}
}

// unavailable reports whether err says the server could not be reached or answered that
// it cannot serve now: a refused, reset or timed-out connection, or an HTTP 5xx answer
// (503 SlowDown included). A missing key, denied access, a bad request or a cancelled
// ctx are not: retrying cannot change them.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || isNotFound(err) {
		return false
	}
	if resp := minio.ToErrorResponse(err); resp.StatusCode != 0 || resp.Code != "" {
		switch resp.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioServerNotInitialized":
			return true
		}
		return resp.StatusCode >= http.StatusInternalServerError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The caller's deadline, not the server's: the caller's ctx decides.
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
