package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
)

// Why a live event stream was ended; revoked tells the client.
var (
	// errUserDisabled ends an event stream whose user was disabled while it ran.
	errUserDisabled = errors.New("the stream's user was disabled")
	// errKeyRevoked ends an event stream opened with an API key (or a ticket minted
	// with one) when that key, or a key above it, is revoked or erased.
	errKeyRevoked = errors.New("the stream's API key was revoked")
	// errKeyExpired ends it when that key, or a key above it, expires.
	errKeyExpired = errors.New("the stream's API key expired")
)

// liveStreams are the open event streams (WebSocket, SSE) of this replica, each filed
// under the names of what it depends on: its user (userStream) and, when it was opened
// with an API key or a ticket minted with one, that key and every key above it
// (keyStream). Each replica follows the users and apikeys buckets (watchUsers,
// watchKeys) from its first stream on and cancels the streams filed under a user that
// is disabled or deleted and under a key that is revoked, so they close within the
// watch's latency on every replica; the per-ping check in follow (stillActive) is the
// fallback while a watch restarts.
type liveStreams struct {
	mu       sync.Mutex
	byName   map[string]map[*context.CancelCauseFunc]struct{}
	watchers sync.Once
}

// The names streams are filed under.
const (
	userStreamPrefix = "user:"
	keyStreamPrefix  = "key:"
)

func userStream(tenant, user string) string { return userStreamPrefix + tenant + "." + user }
func keyStream(id string) string            { return keyStreamPrefix + id }

// register files a stream under names and returns the function that removes it.
func (l *liveStreams) register(names []string, cancel context.CancelCauseFunc) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName == nil {
		l.byName = map[string]map[*context.CancelCauseFunc]struct{}{}
	}
	key := &cancel
	for _, n := range names {
		set := l.byName[n]
		if set == nil {
			set = map[*context.CancelCauseFunc]struct{}{}
			l.byName[n] = set
		}
		set[key] = struct{}{}
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, n := range names {
			if cur := l.byName[n]; cur != nil {
				delete(cur, key)
				if len(cur) == 0 {
					delete(l.byName, n)
				}
			}
		}
	}
}

// named returns what follows prefix in the names with live streams.
func (l *liveStreams) named(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.byName {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// end cancels every stream filed under name with cause and returns how many there
// were. A stream filed under other names too stays there until it unregisters.
func (l *liveStreams) end(name string, cause error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.byName[name]
	for c := range set {
		(*c)(cause)
	}
	delete(l.byName, name)
	return len(set)
}

// trackStream registers the stream whose context is ctx for the caller's user and API
// key and starts this replica's watches on first use. It returns the stream's context,
// which is cancelled with errUserDisabled, errUserGone or errKeyRevoked when that
// happens, and the function to call when the stream ends.
func (s *Service) trackStream(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if s.sec == nil || s.sec.Users == nil {
		return ctx, func() { cancel(nil) }
	}
	s.startWatches()
	p := s.principal(ctx)
	names := []string{userStream(p.Tenant, p.User)}
	if p.KeyID != "" && s.sec.Keys != nil {
		ids, err := s.sec.Keys.Lineage(ctx, p.KeyID)
		if err != nil {
			ids = []string{p.KeyID} // stillActive, which follow calls next, says why
		}
		for _, id := range ids {
			names = append(names, keyStream(id))
		}
	}
	unregister := s.live.register(names, cancel)
	return ctx, func() {
		unregister()
		cancel(nil)
	}
}

// keyEnded maps an error of APIKeys.Lineage to why a stream opened with the key must
// end, or nil when the key is usable or could not be read (tried again later).
func keyEnded(err error) error {
	switch {
	case errors.Is(err, auth.ErrKeyExpired):
		return errKeyExpired
	case errors.Is(err, auth.ErrInvalidKey):
		return errKeyRevoked
	}
	return nil
}

// startWatches starts this replica's watches of the users and apikeys buckets once
// (Handler calls it, so they run before the first stream opens).
func (s *Service) startWatches() {
	if s.sec == nil || s.sec.Users == nil {
		return
	}
	s.live.watchers.Do(func() {
		go s.keepWatching("users", s.watchUsers)
		if s.sec.Keys != nil {
			go s.keepWatching("apikeys", s.watchKeys)
		}
	})
}

// keepWatching runs watch, which follows one bucket until its watch ends, again and
// again until the service closes. A watch that fails is started again after a pause
// that doubles from one second to 30 while it keeps failing; only the first failure
// of a streak is logged.
func (s *Service) keepWatching(bucket string, watch func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	pause, failing := time.Second, false
	for ctx.Err() == nil {
		if err := watch(ctx); err != nil {
			if !failing {
				s.log.WithError(err).WithField("bucket", bucket).Warn("cannot follow a bucket of credentials; the live streams it should end close at their next ping until it works again")
			}
			failing = true
			pause = min(2*pause, 30*time.Second)
		} else {
			failing, pause = false, time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// watchUsers follows the users bucket until the watch ends and ends the live streams
// of every user that is disabled or deleted.
func (s *Service) watchUsers(ctx context.Context) error {
	changes, err := s.sec.Users.Watch(ctx)
	if err != nil {
		return err
	}
	// Streams registered before the watch began miss changes made meanwhile: check
	// their users once now.
	for _, user := range s.live.named(userStreamPrefix) {
		tenant, id, _ := strings.Cut(user, ".")
		if err := s.stillActive(auth.NewContext(ctx, auth.Principal{Tenant: tenant, User: id})); err != nil {
			s.live.end(userStream(tenant, id), err)
		}
	}
	for c := range changes {
		cause := error(nil)
		switch {
		case c.User == nil:
			cause = errUserGone
		case c.User.Disabled:
			cause = errUserDisabled
		default:
			continue
		}
		if n := s.live.end(userStream(c.Tenant, c.ID), cause); n > 0 {
			s.log.WithField("tenant", c.Tenant).WithField("streams", n).Info("closed the live event streams of a disabled or deleted user")
		}
	}
	return nil
}

// watchKeys follows the apikeys bucket until the watch ends and ends the live streams
// opened with a key that is revoked or erased, or with a key it minted. Revoking a key
// marks every key below it revoked too (APIKeys.Revoke), and a stream is also filed
// under the keys above its own (trackStream), so one change is enough.
func (s *Service) watchKeys(ctx context.Context) error {
	changes, err := s.sec.Keys.Watch(ctx)
	if err != nil {
		return err
	}
	for _, id := range s.live.named(keyStreamPrefix) {
		_, err := s.sec.Keys.Lineage(ctx, id)
		if cause := keyEnded(err); cause != nil {
			s.live.end(keyStream(id), cause)
		}
	}
	for c := range changes {
		if c.Key != nil && c.Key.RevokedAt.IsZero() {
			continue
		}
		if n := s.live.end(keyStream(c.ID), errKeyRevoked); n > 0 {
			s.log.WithField("api_key", c.ID).WithField("streams", n).Info("closed the live event streams of a revoked API key")
		}
	}
	return nil
}
