package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
)

// errUserDisabled ends an event stream whose user was disabled while it ran.
var errUserDisabled = errors.New("the stream's user was disabled")

// liveStreams are the open event streams (WebSocket, SSE) of this replica by user
// ("<tenant>.<user>"). Each replica follows the users bucket (Users.Watch) from its
// first stream on and cancels the streams of a user that is disabled or deleted, so
// they close within the watch's latency on every replica; the per-ping check in
// follow (stillActive) is the fallback while the watch restarts.
type liveStreams struct {
	mu      sync.Mutex
	byUser  map[string]map[*context.CancelCauseFunc]struct{}
	watcher sync.Once
}

// register adds a stream of user and returns the function that removes it.
func (l *liveStreams) register(user string, cancel context.CancelCauseFunc) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byUser == nil {
		l.byUser = map[string]map[*context.CancelCauseFunc]struct{}{}
	}
	set := l.byUser[user]
	if set == nil {
		set = map[*context.CancelCauseFunc]struct{}{}
		l.byUser[user] = set
	}
	key := &cancel
	set[key] = struct{}{}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if cur := l.byUser[user]; cur != nil {
			delete(cur, key)
			if len(cur) == 0 {
				delete(l.byUser, user)
			}
		}
	}
}

// users returns the users with live streams.
func (l *liveStreams) users() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.byUser))
	for u := range l.byUser {
		out = append(out, u)
	}
	return out
}

// end cancels every stream of user with cause and returns how many there were.
func (l *liveStreams) end(user string, cause error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.byUser[user]
	for c := range set {
		(*c)(cause)
	}
	delete(l.byUser, user)
	return len(set)
}

// trackStream registers the stream whose context is ctx for the caller's user and
// starts this replica's watch of the users bucket on first use. It returns the
// stream's context, which is cancelled with errUserDisabled or errUserGone when that
// happens to the user, and the function to call when the stream ends.
func (s *Service) trackStream(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if s.sec == nil || s.sec.Users == nil {
		return ctx, func() { cancel(nil) }
	}
	s.startUserWatch()
	p := s.principal(ctx)
	unregister := s.live.register(p.Tenant+"."+p.User, cancel)
	return ctx, func() {
		unregister()
		cancel(nil)
	}
}

// startUserWatch starts this replica's watch of the users bucket once (Handler calls
// it, so the watch is running before the first stream opens).
func (s *Service) startUserWatch() {
	if s.sec == nil || s.sec.Users == nil {
		return
	}
	s.live.watcher.Do(func() { go s.watchUsers() })
}

// watchUsers follows the users bucket until the service closes and ends the live
// streams of every user that is disabled or deleted. A failed or ended watch is
// started again after a pause that doubles from one second to 30 while it keeps
// failing; only the first failure of a streak is logged.
func (s *Service) watchUsers() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	pause, failing := time.Second, false
	for ctx.Err() == nil {
		changes, err := s.sec.Users.Watch(ctx)
		if err != nil {
			if !failing {
				s.log.WithError(err).Warn("cannot follow the users bucket; live streams of disabled users close at their next ping until it works again")
			}
			failing = true
			pause = min(2*pause, 30*time.Second)
		} else {
			failing, pause = false, time.Second
			// Streams registered before the watch began miss changes made meanwhile:
			// check their users once now.
			for _, user := range s.live.users() {
				tenant, id, _ := strings.Cut(user, ".")
				if err := s.stillActive(auth.NewContext(ctx, auth.Principal{Tenant: tenant, User: id})); err != nil {
					s.live.end(user, err)
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
				if n := s.live.end(c.Tenant+"."+c.ID, cause); n > 0 {
					s.log.WithField("tenant", c.Tenant).WithField("streams", n).Info("closed the live event streams of a disabled or deleted user")
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}
