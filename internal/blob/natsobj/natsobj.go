// Package natsobj is the blob.Store backend on a JetStream object store bucket: the
// embedded default (`studio up`), replicated with the streams on a cluster.
package natsobj

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/streams"
)

// ObjectStore implements blob.Store on a JetStream object store bucket. It is the
// embedded default: no extra server, replicated with the streams on a cluster.
// Safe for concurrent use.
type ObjectStore struct {
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	stream jetstream.Stream // the bucket's stream, for getSmall's chunk read
	bucket string
}

var _ blob.Store = (*ObjectStore)(nil)

// Bucket is the object store bucket of inputs, intermediate artifacts and results.
const Bucket = "studio"

// Provision creates or updates the object store bucket, stored and replicated as t says,
// with reads answered by the stream leader (see StreamConfig).
func Provision(ctx context.Context, js jetstream.JetStream, t streams.Topology) error {
	return provision(ctx, js, Bucket, t.Storage, t.Replicas)
}

func provision(ctx context.Context, js jetstream.JetStream, bucket string, storage jetstream.StorageType, replicas int) error {
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(bucket, storage, replicas)); err != nil {
		return fmt.Errorf("natsobj: provision object store %s: %w", bucket, err)
	}
	return nil
}

// StreamConfig returns the stream config of an object store bucket: what nats.go's
// CreateObjectStore would create (a test keeps the two equal) but with direct get off.
// With direct get any replica answers the lookup of an object's metadata, and a replica
// that has not applied the latest write answers "not found": a stage would find the
// input ingest just stored "gone". Without it the stream leader answers, which acked
// the write only after storing it; the chunks are then read by an ordered consumer,
// which waits for all of them. The client decides per bucket handle at bind time, so a
// process bound before the bucket was provisioned this way must re-bind (restart).
func StreamConfig(bucket string, storage jetstream.StorageType, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        "OBJ_" + bucket,
		Description: "input images, intermediate tensors and results",
		Subjects:    []string{"$O." + bucket + ".C.>", "$O." + bucket + ".M.>"},
		MaxBytes:    -1,
		Storage:     storage,
		Replicas:    max(replicas, 1),
		Discard:     jetstream.DiscardNew,
		AllowRollup: true,
		AllowDirect: false,
	}
}

// Open opens the named bucket, creating it (one replica, file storage, leader reads)
// when it does not exist; on a cluster, Provision creates it first with the replicas
// of the topology.
func Open(ctx context.Context, js jetstream.JetStream, bucket string) (*ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if err = provision(ctx, js, bucket, jetstream.FileStorage, 1); err == nil {
			obs, err = js.ObjectStore(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsobj: open object store %s: %w", bucket, err)
	}
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("natsobj: open object store %s: its stream: %w", bucket, err)
	}
	return &ObjectStore{js: js, obs: obs, stream: st, bucket: bucket}, nil
}

// Put stores r under key; the object store computes the SHA-256 while chunking.
func (s *ObjectStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (blob.Info, error) {
	if size >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, transferTimeout(size))
		defer cancel()
	}
	meta := jetstream.ObjectMeta{Name: key}
	if contentType != "" {
		meta.Headers = nats.Header{"Content-Type": []string{contentType}}
	}
	if size >= 0 && size <= maxPutNew {
		data, err := readSized(r, size)
		if err != nil {
			return blob.Info{}, fmt.Errorf("blob: put %s: %w", key, err)
		}
		oi, err := s.putNew(ctx, meta, data)
		if err == nil {
			return toInfo(oi)
		}
		if !errors.Is(err, errObjectExists) {
			return blob.Info{}, fmt.Errorf("blob: put %s: %w", key, err)
		}
		r = bytes.NewReader(data) // an object is there: replace it (below), old chunks and all
	} else if size >= 0 {
		// A short or long body fails the Put, and the object store discards the chunks.
		r = &sizedReader{r: r, want: size}
	}
	info, err := s.obs.Put(ctx, meta, r)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return toInfo(info)
}

// callTimeout bounds an object store call that moves no data (info, delete) and the
// fixed part of one that does; a transfer gets callTimeout plus its size at minRate.
// Without a bound of its own a call whose request, reply or publish acknowledgement was
// lost in a leader election (the leader killed, a node paused) waits for its caller's
// deadline, which in a stage is the whole stage's (1 to 5 minutes): the stage then
// fails the job as too slow for its deadline, or holds it for minutes, instead of
// retrying it on the new leader seconds later.
var callTimeout = 15 * time.Second // a variable for the tests

// minRate is the slowest transfer rate a Put or Get is given time for (bytes/s).
const minRate = 1 << 20

func transferTimeout(size int64) time.Duration {
	return callTimeout + time.Duration(max(size, 0))*time.Second/minRate
}

// timedResult is an object being read under its own deadline; Close ends it.
type timedResult struct {
	jetstream.ObjectResult
	cancel context.CancelFunc
}

func (r *timedResult) Close() error {
	err := r.ObjectResult.Close()
	r.cancel()
	return err
}

// Get opens key for reading. The object store verifies the digest at EOF.
func (s *ObjectStore) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	// The size first (under callTimeout), so the read gets a deadline of its own.
	ictx, icancel := context.WithTimeout(ctx, callTimeout)
	oi, err := s.obs.GetInfo(ictx, key)
	icancel()
	if err != nil {
		return nil, blob.Info{}, mapErr(key, err)
	}
	if oi.Size <= maxGetSmall && oi.Chunks <= 1 && oi.NUID != "" && (oi.Opts == nil || oi.Opts.Link == nil) {
		return s.getSmall(ctx, oi)
	}
	gctx, cancel := context.WithTimeout(ctx, transferTimeout(int64(oi.Size)))
	obj, err := s.obs.Get(gctx, key)
	if err != nil {
		cancel()
		return nil, blob.Info{}, mapErr(key, err)
	}
	res := &timedResult{ObjectResult: obj, cancel: cancel}
	oi, err = res.Info()
	if err != nil {
		res.Close()
		return nil, blob.Info{}, mapErr(key, err)
	}
	info, err := toInfo(oi)
	if err != nil {
		res.Close()
		return nil, blob.Info{}, err
	}
	return res, info, nil
}

// maxGetSmall bounds the objects Get reads with getSmall: one chunk, small enough that
// the stream API's JSON reply (base64 data) costs less than an ordered consumer.
const maxGetSmall = 64 << 10

// getSmall reads an object of at most one chunk with one message-get request to the
// stream leader (direct get is off, as for the metadata: see StreamConfig), where the
// object store's Get looks the metadata up a second time and creates, reads and deletes
// an ordered consumer: two JetStream API requests and a subscription more, per read of
// every intermediate artifact. It checks the size and digest as the object store does
// at EOF.
func (s *ObjectStore) getSmall(ctx context.Context, oi *jetstream.ObjectInfo) (io.ReadCloser, blob.Info, error) {
	info, err := toInfo(oi)
	if err != nil {
		return nil, blob.Info{}, err
	}
	var data []byte
	if oi.Size > 0 {
		gctx, cancel := context.WithTimeout(ctx, transferTimeout(int64(oi.Size)))
		m, err := s.stream.GetLastMsgForSubject(gctx, "$O."+s.bucket+".C."+oi.NUID)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// The object was deleted (its chunks purged) after its metadata was read.
			return nil, blob.Info{}, fmt.Errorf("%w: %s", blob.ErrNotFound, oi.Name)
		}
		if err != nil {
			return nil, blob.Info{}, mapErr(oi.Name, err)
		}
		data = m.Data
	}
	if uint64(len(data)) != oi.Size {
		return nil, blob.Info{}, fmt.Errorf("blob: %s: %w (stored %d bytes, metadata says %d)", oi.Name, jetstream.ErrDigestMismatch, len(data), oi.Size)
	}
	sum := sha256.Sum256(data)
	if want := "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:]); oi.Digest != "" && oi.Digest != want {
		return nil, blob.Info{}, fmt.Errorf("blob: %s: %w", oi.Name, jetstream.ErrDigestMismatch)
	}
	return io.NopCloser(bytes.NewReader(data)), info, nil
}

// Stat returns the object's metadata.
func (s *ObjectStore) Stat(ctx context.Context, key string) (blob.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	oi, err := s.obs.GetInfo(ctx, key)
	if err != nil {
		return blob.Info{}, mapErr(key, err)
	}
	return toInfo(oi)
}

// Delete removes key; a missing key is not an error.
func (s *ObjectStore) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := s.obs.Delete(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}

// List returns the objects whose key starts with prefix.
func (s *ObjectStore) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	all, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob: list %q: %w", prefix, err)
	}
	var out []blob.Info
	for _, oi := range all {
		if !strings.HasPrefix(oi.Name, prefix) {
			continue
		}
		info, err := toInfo(oi)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func toInfo(oi *jetstream.ObjectInfo) (blob.Info, error) {
	info := blob.Info{Key: oi.Name, Size: int64(oi.Size), ModTime: oi.ModTime}
	if oi.Headers != nil {
		info.ContentType = oi.Headers.Get("Content-Type")
	}
	if d, ok := strings.CutPrefix(oi.Digest, "SHA-256="); ok {
		raw, err := base64.URLEncoding.DecodeString(d)
		if err != nil {
			return blob.Info{}, fmt.Errorf("blob: %s has a malformed digest %q: %w", oi.Name, oi.Digest, err)
		}
		info.SHA256 = hex.EncodeToString(raw)
	}
	return info, nil
}

func mapErr(key string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s: %w", key, err)
}

// maxPutNew bounds the objects Put writes with putNew, from memory: larger ones
// stream through the object store's own Put.
const maxPutNew = 1 << 20

// putTimeout bounds a putNew whose context has no deadline.
const putTimeout = 30 * time.Second

// chunkSize is the object store's default chunk size, which putNew uses too.
const chunkSize = 128 << 10

// errObjectExists says putNew found an object (or a delete marker) under the name.
var errObjectExists = errors.New("an object exists under the name")

// putNew writes data as a new object the way the object store's Put does (chunks on
// $O.<bucket>.C.<nuid>, then the meta message with a rollup on $O.<bucket>.M.<name>,
// same digest and layout, so every reader sees an ordinary object), in fewer round
// trips: no lookup of an existing object first, no reply subscription and chunk buffer
// of its own, and the chunks go out through the store's JetStream context with their
// acks awaited together before the meta message is sent. The meta message
// expects no earlier message on its subject (Nats-Expected-Last-Subject-Sequence: 0),
// so a name already in use is refused by the server rather than overwritten, which
// would leave the old chunks behind: putNew then purges its own chunks and returns
// errObjectExists, and Put replaces the object through the object store's Put, which
// cleans up. Ingest's inputs (a fresh job id each) never take that path.
func (s *ObjectStore) putNew(ctx context.Context, meta jetstream.ObjectMeta, data []byte) (*jetstream.ObjectInfo, error) {
	if _, ok := ctx.Deadline(); !ok {
		// As the object store's Put: acks that never come time out.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, putTimeout)
		defer cancel()
	}
	id := nuid.Next()
	chunkSubj := "$O." + s.bucket + ".C." + id
	sum := sha256.Sum256(data)
	meta.Opts = &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}
	info := &jetstream.ObjectInfo{ObjectMeta: meta, Bucket: s.bucket, NUID: id, Size: uint64(len(data)),
		Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])}
	var acks []jetstream.PubAckFuture
	for off := 0; off < len(data); off += chunkSize {
		m := nats.NewMsg(chunkSubj)
		m.Data = data[off:min(off+chunkSize, len(data))]
		f, err := s.js.PublishMsgAsync(m)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// The connection has too many async publishes waiting: wait for this one.
			f = nil
			_, err = s.js.PublishMsg(ctx, m)
		}
		if err != nil {
			return nil, s.dropChunks(ctx, chunkSubj, fmt.Errorf("publish chunk: %w", err))
		}
		if f != nil {
			acks = append(acks, f)
		}
		info.Chunks++
	}
	mm := nats.NewMsg("$O." + s.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(meta.Name)))
	mm.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	mm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	var err error
	if mm.Data, err = json.Marshal(info); err != nil {
		return nil, s.dropChunks(ctx, chunkSubj, err)
	}
	// The chunks are acknowledged before the meta message is sent: a reader that finds
	// the meta finds every chunk.
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, s.dropChunks(ctx, chunkSubj, fmt.Errorf("store chunk: %w", err))
		case <-ctx.Done():
			return nil, s.dropChunks(ctx, chunkSubj, ctx.Err())
		}
	}
	if _, err := s.js.PublishMsg(ctx, mm); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, s.dropChunks(ctx, chunkSubj, errObjectExists)
		}
		return nil, s.dropChunks(ctx, chunkSubj, fmt.Errorf("publish meta: %w", err))
	}
	info.ModTime = time.Now().UTC() // as the object store's Put: the client's clock
	return info, nil
}

// readSized returns the size bytes of r, and fails when r holds fewer or more. A
// blob.BytesReader hands over its bytes without a copy.
func readSized(r io.Reader, size int64) ([]byte, error) {
	if br, ok := r.(*blob.BytesReader); ok {
		b := br.Unread()
		if int64(len(b)) != size {
			return nil, fmt.Errorf("body is %d bytes, not the declared %d", len(b), size)
		}
		return b, nil
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("body ended before the declared %d bytes: %w", size, err)
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("body is longer than the declared %d bytes", size)
	}
	return data, nil
}

// dropChunks purges the chunks of a put that did not complete and returns err.
func (s *ObjectStore) dropChunks(ctx context.Context, chunkSubj string, err error) error {
	// The clean-up outlives a cancelled put, but within a bound of its own: a server cut
	// off would hold it for the client's default timeout per request.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if st, serr := s.js.Stream(cctx, "OBJ_"+s.bucket); serr == nil {
		_ = st.Purge(cctx, jetstream.WithPurgeSubject(chunkSubj))
	}
	return err
}

// sizedReader fails at EOF when the body was not exactly want bytes long.
type sizedReader struct {
	r    io.Reader
	want int64
	got  int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.got += int64(n)
	if s.got > s.want {
		return n, fmt.Errorf("body is longer than the declared %d bytes", s.want)
	}
	if err == io.EOF && s.got != s.want {
		return n, fmt.Errorf("body ended after %d of the declared %d bytes", s.got, s.want)
	}
	return n, err
}

// Purge deletes key and then the delete marker the object store keeps for it: the
// marker names the key, which may hold a job id, so erasure must not leave it.
func (s *ObjectStore) Purge(ctx context.Context, key string) error {
	if err := s.Delete(ctx, key); err != nil {
		return err
	}
	st, err := s.obs.Status(ctx)
	if err != nil {
		return fmt.Errorf("blob: purge %s: object store status: %w", key, err)
	}
	bucket := st.Bucket()
	if err := streams.PurgeSubject(ctx, s.js, "OBJ_"+bucket, "$O."+bucket+".M."+base64.URLEncoding.EncodeToString([]byte(key))); err != nil {
		return fmt.Errorf("blob: purge %s: %w", key, err)
	}
	return nil
}

// Keys returns the keys under any of prefixes. The object store lists every object on
// every call, so Keys lists once and filters. Deleted objects whose delete marker
// remains are listed too: the marker names the key, and Purge removes it.
func (s *ObjectStore) Keys(ctx context.Context, prefixes ...string) ([]string, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	all, err := s.obs.List(ctx, jetstream.ListObjectsShowDeleted())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob: list keys: %w", err)
	}
	var out []string
	for _, oi := range all {
		for _, p := range prefixes {
			if strings.HasPrefix(oi.Name, p) {
				out = append(out, oi.Name)
				break
			}
		}
	}
	return out, nil
}
