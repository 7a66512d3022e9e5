package erasure

// SetRegistry replaces the registry an Eraser walks, so tests can make one step fail.
func (e *Eraser) SetRegistry(r Registry) { e.reg = r }

// SetAfterRepublish makes an Eraser run f between publishing a batch again and
// deleting the original, so tests can stop an erasure there.
func SetAfterRepublish(e *Eraser, f func() error) { e.afterRepublish = f }
