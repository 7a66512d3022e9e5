package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// KV buckets of rollouts. Keys are task names (subject tokens).
const (
	// BucketRollouts: "<task>" -> Rollout; the history keeps the task's earlier rollouts.
	BucketRollouts = "rollouts"
	// BucketRouting: "<task>" -> Table, the weights every ingest replica routes by.
	BucketRouting = "routing"
)

// rolloutHistory is how many rollouts of one task the bucket keeps.
const rolloutHistory = 32

// Buckets returns the KV buckets of rollouts, stored and replicated as t says.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	kv := func(name, desc string, history uint8) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: history, Storage: t.Storage, Replicas: t.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(BucketRollouts, "model rollouts per task: steps, state, timeline", rolloutHistory),
		kv(BucketRouting, "runtime routing weights per task, watched by every ingest replica", 8),
	}
}

// Table is a task's routing weights as stored in the bucket "routing": the whole table
// in one value, so a replica applies all of it or none.
type Table struct {
	models.Routing
	// Rollout is the rollout that wrote the table.
	Rollout   string    `json:"rollout,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Store keeps rollouts and routing tables in NATS KV. Safe for concurrent use; every
// write is revision-checked.
type Store struct {
	rollouts, routing jetstream.KeyValue
}

// Open binds the rollout buckets (provisioned by internal/topology).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	r, err := streams.BindKV(ctx, js, BucketRollouts)
	if err != nil {
		return nil, err
	}
	w, err := streams.BindKV(ctx, js, BucketRouting)
	if err != nil {
		return nil, err
	}
	return &Store{rollouts: r, routing: w}, nil
}

// Get returns task's latest rollout and its revision.
func (s *Store) Get(ctx context.Context, task schemas.Task) (*Rollout, uint64, error) {
	var r Rollout
	rev, ok, err := streams.GetJSON(ctx, s.rollouts, string(task), &r)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", ErrNotFound, task)
	}
	return &r, rev, nil
}

// List returns every task's latest rollout, by task.
func (s *Store) List(ctx context.Context) ([]Rollout, error) {
	var out []Rollout
	err := streams.ScanJSON(ctx, s.rollouts, ">", func(_ string, r Rollout) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out, nil
}

// History returns task's rollouts, newest first, as far as the bucket keeps them.
func (s *Store) History(ctx context.Context, task schemas.Task) ([]Rollout, error) {
	es, err := s.rollouts.History(ctx, string(task))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rollout: history of %s: %w", task, err)
	}
	var out []Rollout
	seen := map[string]bool{}
	for i := len(es) - 1; i >= 0; i-- {
		var r Rollout
		if es[i].Operation() != jetstream.KeyValuePut || json.Unmarshal(es[i].Value(), &r) != nil || seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		out = append(out, r)
	}
	return out, nil
}

// put writes r under its task: created when rev is 0 and the key is new, else only if
// the stored revision is still rev. A lost race is ErrConflict.
func (s *Store) put(ctx context.Context, r *Rollout, rev uint64) (uint64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("rollout: encode %s: %w", r.Task, err)
	}
	if rev == 0 {
		rev, err = s.rollouts.Create(ctx, string(r.Task), data)
	} else {
		rev, err = s.rollouts.Update(ctx, string(r.Task), data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, fmt.Errorf("%w: %s changed meanwhile", ErrConflict, r.Task)
	}
	if err != nil {
		return 0, fmt.Errorf("rollout: write %s: %w", r.Task, err)
	}
	return rev, nil
}

// ErrConflict: someone else wrote the value first; read it again and retry.
var ErrConflict = errors.New("rollout: concurrent update")

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Routing returns task's routing table, if one is stored.
func (s *Store) Routing(ctx context.Context, task schemas.Task) (*Table, bool, error) {
	var t Table
	_, ok, err := streams.GetJSON(ctx, s.routing, string(task), &t)
	if err != nil || !ok {
		return nil, false, err
	}
	return &t, true, nil
}

// SetRouting writes task's whole weight table in one revision-checked value.
func (s *Store) SetRouting(ctx context.Context, task schemas.Task, model, rollout string, weights map[string]int) error {
	_, err := streams.UpdateJSON(ctx, s.routing, string(task), func(t *Table, _ bool) error {
		*t = Table{Routing: models.Routing{Model: model, Weights: weights}, Rollout: rollout, UpdatedAt: time.Now().UTC()}
		return nil
	})
	return err
}

// WatchRouting calls apply with every task's routing table as stored now and then with
// every change (nil when a table is deleted), until ctx is cancelled. Each ingest
// replica runs it with Catalog.SetRouting, so weights change at runtime everywhere.
// It blocks; it returns nil when ctx ends.
func WatchRouting(ctx context.Context, js jetstream.JetStream, apply func(schemas.Task, *models.Routing)) error {
	kv, err := streams.BindKV(ctx, js, BucketRouting)
	if err != nil {
		return err
	}
	for {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rollout: watch routing: %w", err)
		}
	updates:
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop()
				return nil
			case e, ok := <-w.Updates():
				if !ok {
					break updates
				}
				if e == nil {
					continue // the current values are in
				}
				task := schemas.Task(e.Key())
				if e.Operation() != jetstream.KeyValuePut {
					apply(task, nil)
					continue
				}
				var t Table
				if err := json.Unmarshal(e.Value(), &t); err != nil {
					continue // a corrupt table is ignored; the last good one stays
				}
				apply(task, &t.Routing)
			}
		}
		// The watcher's channel closed without ctx ending (connection lost for good):
		// start a new one, which begins with the current values.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
