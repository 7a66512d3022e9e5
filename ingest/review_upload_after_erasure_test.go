package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/erasure"
)

// A presigned upload URL stays valid for 15 minutes and PUT checks only its
// signature, not that its user still exists. A URL issued before an erasure stores the
// erased user's file afterwards, under uploads/<tenant>/<user>/, where nothing will
// ever erase it again.
func TestAPresignedUploadOfAnErasedUserStoresNothing(t *testing.T) {
	ctx := context.Background()
	e := newFootprintEnv(t, footprintBackends[0])
	var ticket ingest.UploadTicket
	e.do(t, http.MethodPost, "/v1/uploads", e.tokens["bob"], nil, "", nil, http.StatusCreated, &ticket)
	var rep erasure.ErasureReport
	e.do(t, http.MethodDelete, "/v1/users/bob/data", e.tokens["root"], nil, "", nil, http.StatusOK, &rep)

	req, err := http.NewRequest(http.MethodPut, e.api.URL+ticket.UploadURL, bytes.NewReader(encodePNG(t, gridImage(9, 9))))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "image/png")
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	_, err = e.blobs.Stat(ctx, ticket.Key)
	if !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("PUT after bob's erasure answered %d and %s is stored (stat err %v)", res.StatusCode, ticket.Key, err)
	}
}
