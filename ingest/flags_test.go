package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// A result the safety checker flagged says so in both API versions: v2's results
// list carries its flags, v1's results map the flagged reference.
func TestAnUnsafeResultIsFlaggedInBothAPIVersions(t *testing.T) {
	e := newSecureEnv(t)
	id := jobID(t, e.submitAs(t, e.tokens["carol"]))
	_, err := e.jobs.Update(context.Background(), id, func(r *schemas.JobRecord) error {
		flagged := r.Input
		flagged.Flags = []string{schemas.FlagUnsafe}
		r.Status, r.FinishedAt = schemas.StatusSucceeded, time.Now().UTC()
		r.Results = map[string]schemas.ObjectRef{"image": r.Input, "image-2": flagged}
		return nil
	})
	require.NoError(t, err)

	r := e.call(t, http.MethodGet, "/v2/jobs/"+id, e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var v2 ingest.JobV2
	require.NoError(t, json.Unmarshal(r.body, &v2))
	flags := map[string][]string{}
	for _, f := range v2.Results {
		flags[f.Name] = f.Flags
	}
	require.Equal(t, map[string][]string{"image": nil, "image-2": {schemas.FlagUnsafe}}, flags)

	r = e.call(t, http.MethodGet, "/v1/jobs/"+id, e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var v1 ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &v1))
	require.Equal(t, []string{schemas.FlagUnsafe}, v1.Results["image-2"].Flags)
	require.Empty(t, v1.Results["image"].Flags)
}
