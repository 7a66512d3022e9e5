package erasure

// SetRegistry replaces the registry an Eraser walks, so tests can make one step fail.
func (e *Eraser) SetRegistry(r Registry) { e.reg = r }
