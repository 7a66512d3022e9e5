package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// BucketLeases holds the cluster-wide leases (Lease): one key per lease, naming its
// holder; the bucket's TTL is the lease's term.
const BucketLeases = "leases"

// DefaultLeaseTTL is the term of a lease in the leases bucket: a holder that dies is
// replaced within it.
const DefaultLeaseTTL = 15 * time.Second

// LeaseBucket returns the leases bucket, replicated like the other buckets.
func LeaseBucket(t Topology) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: BucketLeases, Description: "cluster-wide leases: which process runs a singleton task (the job-deadline sweeper)",
		History: 1, TTL: DefaultLeaseTTL, Storage: t.Storage, Replicas: t.Replicas,
	}
}

// ErrLeaseLost ends the work of a Lease holder whose lease was taken over or could not
// be renewed in time (the context handed to the work is cancelled with it as cause).
var ErrLeaseLost = errors.New("streams: lease lost")

// Lease runs a task on one process of the cluster at a time: the holder writes its name
// under Name in a KV bucket whose TTL is the lease's term and renews it (a
// compare-and-swap on its own revision) three times per term; a holder that dies stops
// renewing, its key expires, and another process takes over within one term. Brief
// overlaps are possible (a holder cut off from the cluster runs until its renewal
// fails), so the task must tolerate a second copy for a moment, as the job-deadline
// sweeper does (it fails jobs by compare-and-swap). Run blocks; a Lease is used by one
// goroutine.
type Lease struct {
	KV jetstream.KeyValue
	// Name is the key of the lease ("job-deadlines").
	Name string
	// Holder names this process in the key (host name + pid).
	Holder string
	Log    logrus.FieldLogger
}

// Run takes the lease whenever it is free and runs work while holding it, with a
// context cancelled (cause ErrLeaseLost) when the lease is lost; it then waits to take
// it again. It returns when ctx is cancelled, after releasing the lease so a successor
// need not wait for it to expire, or with the error work returned while the lease was
// held.
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context) error) error {
	if l.Log == nil {
		l.Log = logrus.StandardLogger()
	}
	log := l.Log.WithFields(logrus.Fields{"lease": l.Name, "holder": l.Holder})
	ttl, err := l.term(ctx)
	if err != nil {
		return err
	}
	every := ttl / 3
	for ctx.Err() == nil {
		rev, err := l.KV.Create(ctx, l.Name, []byte(l.Holder))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
				log.WithError(err).Debug("could not try the lease; trying again")
			}
			sleepCtx(ctx, every)
			continue
		}
		log.Info("lease taken; running its task")
		err = l.hold(ctx, rev, ttl, every, work, log)
		if err != nil {
			return err
		}
	}
	return nil
}

// hold runs work while renewing the lease at revision rev; it returns work's error,
// or nil once the lease is lost or released at the end of ctx.
func (l *Lease) hold(ctx context.Context, rev uint64, ttl, every time.Duration, work func(context.Context) error, log logrus.FieldLogger) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()
	renewed := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			l.release(rev, log)
			if ctx.Err() != nil || errors.Is(context.Cause(wctx), ErrLeaseLost) {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("streams: the task of lease %s ended while holding it", l.Name)
			}
			return err
		case <-tick.C:
		}
		if ctx.Err() != nil {
			continue // work is ending with ctx
		}
		rctx, rcancel := context.WithTimeout(ctx, every)
		next, err := l.KV.Update(rctx, l.Name, []byte(l.Holder), rev)
		rcancel()
		switch {
		case err == nil:
			rev, renewed = next, time.Now()
		case isConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound):
			log.WithError(err).Warn("lease taken over by another process; stopping its task")
			cancel(ErrLeaseLost)
			return waitWork(done)
		case time.Since(renewed) >= ttl-every:
			// Another process may take it any moment now: stop first.
			log.WithError(err).Warn("lease not renewed within its term; stopping its task")
			cancel(ErrLeaseLost)
			return waitWork(done)
		default:
			log.WithError(err).Warn("could not renew the lease; trying again")
		}
	}
}

// waitWork waits for work to return after its lease was lost; its error no longer
// matters.
func waitWork(done <-chan error) error {
	<-done
	return nil
}

// release deletes the lease if this process still holds it, so a successor takes over
// at once instead of after the term.
func (l *Lease) release(rev uint64, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.KV.Delete(ctx, l.Name, jetstream.LastRevision(rev)); err != nil {
		log.WithError(err).Debug("lease not released; it expires with its term")
		return
	}
	log.Info("lease released")
}

// term is the bucket's TTL, the lease's term.
func (l *Lease) term(ctx context.Context) (time.Duration, error) {
	st, err := l.KV.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("streams: lease %s: read the bucket: %w", l.Name, err)
	}
	if st.TTL() <= 0 {
		return 0, fmt.Errorf("streams: lease %s: bucket %s has no TTL; a dead holder would keep the lease for ever", l.Name, st.Bucket())
	}
	return st.TTL(), nil
}
