package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/streams"
)

// enqueue stores the input (inputs/<tenant>/<job>/) before it indexes the job, and
// the input key does not name the user. When the index write fails (or the process
// dies between the two writes) the submission answers 503, and the stored image is
// linked to its user by nothing erasure reads: erasing the user leaves it behind.
func TestAnInputStoredByASubmissionThatFailedToIndexIsErasedWithItsUser(t *testing.T) {
	ctx := context.Background()
	e := newFootprintEnv(t, footprintBackends[0])
	require.NoError(t, e.srv.JS.DeleteKeyValue(ctx, jobs.BucketIndex)) // the index write fails
	e.do(t, http.MethodPost, "/v2/jobs", e.tokens["bob"],
		jsonBody(t, map[string]any{"task": "remove-background", "image": map[string]any{"data": encodePNG(t, gridImage(9, 9))}}),
		"application/json", nil, http.StatusServiceUnavailable, nil)
	require.NoError(t, topology.Provision(ctx, e.srv.JS, streams.DefaultTopology(1))) // the index is back

	var rep erasure.ErasureReport
	e.do(t, http.MethodDelete, "/v1/users/bob/data", e.tokens["root"], nil, "", nil, http.StatusOK, &rep)
	keys, err := e.blobs.Keys(ctx, "inputs/")
	require.NoError(t, err)
	for _, k := range keys {
		if strings.HasPrefix(k, "inputs/"+footTenant+"/") {
			t.Errorf("bob's input %s survived his erasure (he has no other job)", k)
		}
	}
}
