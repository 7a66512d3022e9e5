// Package topology provisions everything the product keeps in NATS: the streams
// (streams.Topology; the pipeline's from the stage table processors.Stages), the KV buckets each domain package declares (jobs, auth, quota, rollout)
// and the JetStream object store. It is the one list of them; processes call Provision
// at start, tests through streamstest.
package topology

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/streams"
)

// Buckets returns every KV bucket of every domain, and the leases bucket of singleton
// tasks (streams.LeaseBucket), sized by t.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	var out []jetstream.KeyValueConfig
	out = append(out, jobs.Buckets(t)...)
	out = append(out, auth.Buckets(t)...)
	out = append(out, quota.Buckets(t)...)
	out = append(out, streams.LeaseBucket(t))
	out = append(out, rollout.Buckets(t)...)
	return out
}

// Provision creates or updates the streams, every domain's KV buckets and the object
// store. It is idempotent and safe to run from several processes at once.
func Provision(ctx context.Context, js jetstream.JetStream, t streams.Topology) error {
	if err := t.Provision(ctx, js, processors.Streams(), Buckets(t)...); err != nil {
		return err
	}
	return natsobj.Provision(ctx, js, t)
}
