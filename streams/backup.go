package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
)

// StreamSnapshot is what the server reports about a stream it snapshots: the stream's
// configuration and its state (first and last sequence, messages, bytes) at the moment
// of the snapshot. It is kept beside the snapshot data and sent back on restore.
type StreamSnapshot struct {
	Stream string          `json:"stream"`
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

// snapshotChunk is the chunk size asked of the server (it clamps to 1 KiB..1 MiB).
const snapshotChunk = 256 << 10

// apiError is the error member of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (code %d, error %d)", e.Description, e.Code, e.ErrCode)
}

// Snapshot asks the server for a snapshot of stream through the JetStream API
// ($JS.API.STREAM.SNAPSHOT.<stream>, what `nats stream backup` uses) and writes its data
// to w as the server sends it: an s2-compressed tar of the stream's store (every message
// with its headers, sequence and time) and its consumers' state. The server takes it at
// one point of the stream while the stream keeps serving. It acknowledges each chunk (the
// server's flow control), blocks until the last chunk is written or ctx ends, and
// returns the stream's configuration and state at the snapshot and the bytes written.
func Snapshot(ctx context.Context, nc *nats.Conn, stream string, w io.Writer) (*StreamSnapshot, int64, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, fmt.Errorf("streams: snapshot %s: subscribe: %w", stream, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": snapshotChunk})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.SNAPSHOT."+stream, req)
	if err != nil {
		return nil, 0, fmt.Errorf("streams: snapshot %s: %w (is JetStream reachable, and the $JS.API.> subjects allowed?)", stream, err)
	}
	var r struct {
		Error  *apiError       `json:"error"`
		Config json.RawMessage `json:"config"`
		State  json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, 0, fmt.Errorf("streams: snapshot %s: unreadable answer: %w", stream, err)
	}
	if r.Error != nil {
		return nil, 0, fmt.Errorf("streams: snapshot %s: %w", stream, r.Error)
	}
	var n int64
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, n, fmt.Errorf("streams: snapshot %s: waiting for data after %d bytes: %w", stream, n, err)
		}
		if len(m.Data) == 0 {
			// The end: status 204 (or no header, for an empty stream), or the
			// server's error.
			if st := m.Header.Get("Status"); st != "" && st != "204" {
				return nil, n, fmt.Errorf("streams: snapshot %s: server ended it with %s %s", stream, st, m.Header.Get("Description"))
			}
			break
		}
		k, err := w.Write(m.Data)
		n += int64(k)
		if err != nil {
			return nil, n, fmt.Errorf("streams: snapshot %s: write: %w", stream, err)
		}
		if m.Reply != "" {
			if err := m.Respond(nil); err != nil {
				return nil, n, fmt.Errorf("streams: snapshot %s: acknowledge a chunk: %w", stream, err)
			}
		}
	}
	return &StreamSnapshot{Stream: stream, Config: r.Config, State: r.State}, n, nil
}

// Restore creates a stream from a snapshot written by Snapshot
// ($JS.API.STREAM.RESTORE.<stream>): the server must not have the stream yet. It sends
// the data in chunks, each confirmed by the server, and returns once the server has
// loaded it (its messages, sequences and consumers as they were). replicas, when
// positive, replaces the configuration's replica count (a snapshot of a 3-node
// cluster restored into one server). It blocks until done or ctx ends.
func Restore(ctx context.Context, nc *nats.Conn, snap *StreamSnapshot, replicas int, r io.Reader) error {
	cfg := snap.Config
	if replicas > 0 {
		var m map[string]any
		if err := json.Unmarshal(cfg, &m); err != nil {
			return fmt.Errorf("streams: restore %s: unreadable configuration: %w", snap.Stream, err)
		}
		m["num_replicas"] = replicas
		cfg, _ = json.Marshal(m)
	}
	req, _ := json.Marshal(map[string]json.RawMessage{"config": cfg, "state": snap.State})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.RESTORE."+snap.Stream, req)
	if err != nil {
		return fmt.Errorf("streams: restore %s: %w", snap.Stream, err)
	}
	var start struct {
		Error          *apiError `json:"error"`
		DeliverSubject string    `json:"deliver_subject"`
	}
	if err := json.Unmarshal(resp.Data, &start); err != nil {
		return fmt.Errorf("streams: restore %s: unreadable answer: %w", snap.Stream, err)
	}
	if start.Error != nil {
		return fmt.Errorf("streams: restore %s: %w", snap.Stream, start.Error)
	}
	buf := make([]byte, snapshotChunk)
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			ack, err := nc.RequestWithContext(ctx, start.DeliverSubject, buf[:k])
			if err != nil {
				return fmt.Errorf("streams: restore %s: send a chunk: %w", snap.Stream, err)
			}
			if err := answerError(ack.Data); err != nil {
				return fmt.Errorf("streams: restore %s: %w", snap.Stream, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("streams: restore %s: read the snapshot: %w", snap.Stream, rerr)
		}
	}
	// An empty chunk ends the transfer; the answer comes once the stream is loaded.
	done, err := nc.RequestWithContext(ctx, start.DeliverSubject, nil)
	if err != nil {
		return fmt.Errorf("streams: restore %s: finish: %w", snap.Stream, err)
	}
	if err := answerError(done.Data); err != nil {
		return fmt.Errorf("streams: restore %s: %w", snap.Stream, err)
	}
	return nil
}

// answerError returns the error in a JetStream API answer (nil for an empty answer).
func answerError(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	var r struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("unreadable answer %q: %w", truncate(string(data), 200), err)
	}
	if r.Error != nil {
		return r.Error
	}
	return nil
}
