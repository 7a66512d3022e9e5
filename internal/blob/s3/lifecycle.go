package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// ErrLifecycleUnsupported is returned (wrapped) by SetWorkExpiry when the server does not
// implement bucket lifecycle rules (versitygw, some SeaweedFS setups). Callers can log it
// and clean up intermediate objects themselves.
var ErrLifecycleUnsupported = errors.New("s3: server does not support bucket lifecycle rules")

// workRuleIDPrefix marks the rules SetWorkExpiry owns; rules with other IDs are kept.
const workRuleIDPrefix = "studio-expire:"

// SetWorkExpiry installs a lifecycle rule that makes the server delete objects under
// prefix (typically "work/", the pipeline's intermediates) days after they were written.
// It is idempotent: calling it again replaces the rule for prefix and keeps every other
// rule on the bucket. It makes two requests and blocks until they finish; do not call it
// concurrently for the same bucket, as the read-modify-write would lose one update.
func (s *Store) SetWorkExpiry(ctx context.Context, prefix string, days int) error {
	if prefix == "" {
		return errors.New("s3: SetWorkExpiry: empty prefix would expire the whole bucket; pass e.g. \"work/\"")
	}
	if days < 1 {
		return fmt.Errorf("s3: SetWorkExpiry: days is %d; S3 expiry is at least 1 day", days)
	}

	cfg, err := s.client.GetBucketLifecycle(ctx, s.bucket)
	switch {
	case err == nil:
	case minio.ToErrorResponse(err).Code == "NoSuchLifecycleConfiguration":
		cfg = lifecycle.NewConfiguration()
	default:
		return s.lifecycleErr(ctx, "reading", err)
	}

	rule := lifecycle.Rule{
		ID:         workRuleIDPrefix + prefix,
		Status:     "Enabled",
		RuleFilter: lifecycle.Filter{Prefix: prefix},
		Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)},
	}
	if i := indexRule(cfg.Rules, rule.ID); i >= 0 {
		cfg.Rules[i] = rule
	} else {
		cfg.Rules = append(cfg.Rules, rule)
	}
	if err := s.client.SetBucketLifecycle(ctx, s.bucket, cfg); err != nil {
		return s.lifecycleErr(ctx, "setting", err)
	}
	return nil
}

func indexRule(rules []lifecycle.Rule, id string) int {
	for i, r := range rules {
		if r.ID == id {
			return i
		}
	}
	return -1
}

func (s *Store) lifecycleErr(ctx context.Context, doing string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NotImplemented", resp.Code == "MethodNotAllowed",
		resp.StatusCode == http.StatusNotImplemented, resp.StatusCode == http.StatusMethodNotAllowed:
		return fmt.Errorf("%w: %s refused %s the lifecycle of bucket %q: %v", ErrLifecycleUnsupported, s.url(), doing, s.bucket, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return fmt.Errorf("s3: %s the lifecycle of bucket %q at %s: %w", doing, s.bucket, s.url(), err)
}
