// Package schemas holds the wire types of CreativeAI Studio: the events that flow
// through the JetStream pipeline, the job record kept in the KV bucket "jobs", and the
// subjects they travel on. It imports nothing else from this module, so upstream
// publishers and downstream consumers can depend on it alone.
//
// Every event carries a Schema field ("studio.job.requested/v1", ...). A breaking change
// gets a new version suffix; additive fields do not.
package schemas
