package metrics_test

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/metrics"
)

func TestWhatTheServiceDidNotKeepIsExported(t *testing.T) {
	m := metrics.New()
	m.AuditSampledOut("authenticate")
	m.AuditSampledOut("authenticate")
	m.AuditLost("job-submit")
	m.TelemetryLost("preprocess")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	for _, line := range []string{
		`studio_audit_sampled_out_total{action="authenticate"} 2`,
		`studio_audit_lost_total{action="job-submit"} 1`,
		`studio_telemetry_lost_total{stage="preprocess"} 1`,
	} {
		require.Contains(t, string(body), line)
	}
}
