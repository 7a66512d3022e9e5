package studio

import "sync"

// Caches controls what the pages' analytics caches (business reports, SQL results)
// may serve: Flush drops everything kept, and Hold stops them keeping anything new
// until released. Erasure uses it: a kept result may hold rows of a user who was
// erased since, so the caches are dropped when an erasure is requested and, as the
// analytics sink applies it later, keep nothing until it has (see
// erasure.WatchRequests). Safe for concurrent use; a nil *Caches never drops or holds.
type Caches struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every drop: entries of an older generation are stale
	holds int
}

// Flush drops every kept result; queries running now keep nothing either.
func (c *Caches) Flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// Hold drops every kept result and keeps nothing new until release is called
// (release drops again: results computed meanwhile may predate what was waited for).
// Holds nest; release is safe to call more than once.
func (c *Caches) Hold() (release func()) {
	if c == nil {
		return func() {}
	}
	c.mu.Lock()
	c.gen++
	c.holds++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.gen++
			c.holds--
			c.mu.Unlock()
		})
	}
}

// generation returns the current generation and whether results may be kept.
func (c *Caches) generation() (gen uint64, keep bool) {
	if c == nil {
		return 0, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.holds == 0
}

// current reports whether a result of generation gen may still be served.
func (c *Caches) current(gen uint64) bool {
	g, _ := c.generation()
	return g == gen
}
