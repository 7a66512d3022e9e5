package assets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockPollInterval is how often a blocked lock attempt retries. flock has no
// timeout, so waiting is a non-blocking attempt in a loop that watches ctx.
const lockPollInterval = 100 * time.Millisecond

// fileLock is an exclusive flock(2) on a file. flock locks belong to the open
// file description, so two goroutines of one process exclude each other as
// well as two processes do; the kernel drops the lock if the holder dies.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path, creating it if needed, and
// blocks until the lock is free or ctx is done. onWait runs once if the lock
// is held by someone else.
func lockFile(ctx context.Context, path string, onWait func()) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("assets: create lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("assets: open lock file: %w", err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("assets: lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("assets: waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(lockPollInterval):
		}
	}
}

// unlock releases the lock. The lock file stays: removing it would let a
// waiter lock an unlinked inode while a newcomer locks a fresh file.
func (l *fileLock) unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
