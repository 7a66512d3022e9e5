package ingest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/schemas"
)

// Resource bounds, tried as an attacker on both entries (HTTP and the NATS submit
// subject) against a real secured service: each case asserts what the attacker gets
// and what is left on the server.

// A progressive JPEG with thousands of empty scans is a few hundred kilobytes that
// would keep a preprocess worker decoding for minutes; admission counts its scans from
// the markers and refuses it before anything is stored or queued.
func TestAJPEGWithThousandsOfScansIsRefusedAtAdmissionOnBothEntries(t *testing.T) {
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			body := jobBody(t)
			body.Image = &schemas.ImageInput{Data: imagetest.ManyScanJPEG(4096, 4096, 5000)}
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
			require.Equal(t, http.StatusRequestEntityTooLarge, out.status, "%s", out.raw)
			require.Equal(t, "image_too_large", out.code)
			require.Contains(t, string(out.raw), "scans")
			require.Contains(t, string(out.raw), "baseline", "the problem says what to do")
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "image_too_large", "")

			// Nothing was queued: a normal job is the first message of REQUESTS.
			out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			st, err := e.srv.JS.Stream(t.Context(), schemas.StreamRequests)
			require.NoError(t, err)
			info, err := st.Info(t.Context())
			require.NoError(t, err)
			require.EqualValues(t, 1, info.State.Msgs, "only the valid job was queued")
		})
	}
}

// Every unauthenticated request used to write one AUDIT message (kept 30 days): an
// anonymous flood filled the disk. Now only a sample per source and minute is stored
// and the rest are counted.
func TestAnAnonymousFloodStoresOnlyASampleOfAuditEventsOnBothEntries(t *testing.T) {
	const flood = 60
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			for i := range flood {
				bearer := ""
				if i%2 == 1 {
					bearer = "not-a-token"
				}
				out := entry.submit(t, e.secureEnv, submission{bearer: bearer, body: jobBody(t)})
				require.Equal(t, http.StatusUnauthorized, out.status, "%s", out.raw)
			}
			e.audit.requireEvent(t, auth.ActionAuthenticate, auth.ResultDenied, "", "")

			// An identified caller is still audited one by one after the flood.
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultAllowed, "", "job/"+out.jobID)

			// What is left on the server: the AUDIT stream holds the sample (two windows
			// at most if the minute turned during the flood), not one event per request.
			st, err := e.srv.JS.Stream(t.Context(), schemas.StreamAudit)
			require.NoError(t, err)
			info, err := st.Info(t.Context())
			require.NoError(t, err)
			anon := 0
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(t.Context(), seq)
				require.NoError(t, err)
				if m.Subject == schemas.AuditSubject(auth.ActionAuthenticate) && strings.Contains(string(m.Data), `"actor":"anonymous"`) {
					anon++
				}
			}
			require.GreaterOrEqual(t, anon, 1, "failures are still sampled")
			require.LessOrEqual(t, anon, 2*auth.DefaultAnonPerSource, "a flood of %d stored %d audit events", flood, anon)
		})
	}
}
