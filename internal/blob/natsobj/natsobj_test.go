package natsobj_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/blobtest"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestObjectStoreConformance(t *testing.T) {
	s := streamstest.Start(t)
	var n atomic.Int32
	blobtest.Run(t, func(t *testing.T) blob.Store {
		bucket := fmt.Sprintf("conformance-%d", n.Add(1))
		if _, err := s.JS.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: bucket}); err != nil {
			t.Fatal(err)
		}
		st, err := natsobj.Open(context.Background(), s.JS, bucket)
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
