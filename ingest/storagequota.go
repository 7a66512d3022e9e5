package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/creativeai-studio/studio/internal/quota"
)

// checkStorage applies the tenant's storage quota (Security.Storage) to storing adding
// more bytes: a 403 storage_quota_exceeded problem naming the quota and the usage when
// it would not fit; nil when it fits or there is no quota (security off, no Storage).
func (s *Service) checkStorage(ctx context.Context, tenant string, adding int64) error {
	if s.sec == nil || s.sec.Storage == nil {
		return nil
	}
	err := s.sec.Storage.Check(ctx, tenant, adding)
	var ex *quota.StorageExceeded
	if errors.As(err, &ex) {
		return problem(http.StatusForbidden, ex.Code(), ex.Error(), FieldProblem{
			Field: "storage", Constraint: "maximum",
			Message: fmt.Sprintf("%s of the %s storage quota used (%d bytes of %d)", quota.HumanBytes(ex.Used), quota.HumanBytes(ex.Limit), ex.Used, ex.Limit),
		})
	}
	if err != nil {
		return fmt.Errorf("storage quota: %w", err)
	}
	return nil
}

// reserveStorage adds bytes just stored for tenant to its counted usage. A failure is
// logged: the next count from the object store corrects it.
func (s *Service) reserveStorage(ctx context.Context, tenant string, n int64) {
	if s.sec == nil || s.sec.Storage == nil || n <= 0 {
		return
	}
	if err := s.sec.Storage.Reserve(context.WithoutCancel(ctx), tenant, n); err != nil {
		s.log.WithError(err).WithField("tenant", tenant).Warn("storage usage not updated; the next count corrects it")
	}
}

// forgetStorage makes the next check count tenant's usage from the object store (after
// an erasure deleted its objects).
func (s *Service) forgetStorage(ctx context.Context, tenant string) {
	if s.sec == nil || s.sec.Storage == nil {
		return
	}
	if err := s.sec.Storage.Forget(context.WithoutCancel(ctx), tenant); err != nil {
		s.log.WithError(err).WithField("tenant", tenant).Warn("storage usage not recounted after erasure; it is within a minute")
	}
}
