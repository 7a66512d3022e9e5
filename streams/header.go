package streams

import "github.com/nats-io/nats.go"

// Header holds a message's headers. It is nats.Header, named here so that handlers
// build outputs without importing nats.go.
type Header = nats.Header
