package colour

import (
	"container/list"
	"sync"
)

// kind is the direction of a cached transform.
type kind uint8

const (
	toSRGB kind = iota + 1
	fromSRGB
)

// maxTransforms bounds the transform cache. A transform of a matrix/TRC
// profile is a few KB, a LUT-based one up to about a megabyte; a service sees
// few distinct profiles (sRGB, Display P3, Adobe RGB, a handful of printer
// profiles), so 64 keeps them all while a stream of odd profiles cannot grow
// memory without bound.
const maxTransforms = 64

type cacheKey struct {
	sum [32]byte
	k   kind
}

// cache is a bounded LRU of values keyed by profile hash and kind. Safe for
// concurrent use; a value is built outside the lock, so one slow build does
// not stall conversions with other profiles.
type cache[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // front is the most recently used; elements hold *entry[V]
	byKey map[cacheKey]*list.Element
	build func(*Profile, kind) (V, error)
	evict func(V)
}

type entry[V any] struct {
	key cacheKey
	v   V
}

func newCache[V any](max int, build func(*Profile, kind) (V, error), evict func(V)) *cache[V] {
	return &cache[V]{max: max, order: list.New(), byKey: map[cacheKey]*list.Element{}, build: build, evict: evict}
}

// get returns the value for (p, k), building and caching it on a miss and
// evicting the least recently used value when the cache is full.
func (c *cache[V]) get(p *Profile, k kind) (V, error) {
	key := cacheKey{p.sum, k}
	c.mu.Lock()
	if e, ok := c.byKey[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*entry[V]).v
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()

	v, err := c.build(p, k)
	if err != nil {
		return v, err
	}

	c.mu.Lock()
	if e, ok := c.byKey[key]; ok { // built concurrently: keep the first
		c.order.MoveToFront(e)
		kept := e.Value.(*entry[V]).v
		c.mu.Unlock()
		c.evict(v)
		return kept, nil
	}
	c.byKey[key] = c.order.PushFront(&entry[V]{key, v})
	var old []V
	for c.order.Len() > c.max {
		e := c.order.Back()
		c.order.Remove(e)
		delete(c.byKey, e.Value.(*entry[V]).key)
		old = append(old, e.Value.(*entry[V]).v)
	}
	c.mu.Unlock()
	for _, o := range old {
		c.evict(o) // may wait for conversions in flight; outside the lock
	}
	return v, nil
}

// len returns the number of cached values.
func (c *cache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
