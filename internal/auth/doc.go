// Package auth holds the security logic of the service, free of I/O so it can be tested
// alone: who the caller is (Principal, scopes, tenant isolation), JWT access and refresh
// tokens for people (KeySet, Issuer), API keys for programs, signed download URLs for the
// JetStream object store, and the audit vocabulary.
//
// State lives in NATS KV behind small interfaces implemented in package streams: users
// (UserStore), refresh-token families and the deny list (TokenStore), API keys
// (auth.APIKeys). Nothing here imports nats.go.
package auth
