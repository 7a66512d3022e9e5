package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/schemas"
)

// InlineMax bounds the scratch artifacts that travel in the event (ObjectRef.Inline)
// instead of the object store. Below it a stored object costs more than it carries: a
// put is two JetStream round trips, its read two more, and the store stage deletes it
// with three; inline it costs its base64 in one message that is sent anyway. It is small
// enough that an event stays a few KB (a job has a handful of artifacts), so every
// real photo's pixels and tensors are claim-checked as before; only tiny images (a
// thumbnail of an icon, the bench's 8x8 inputs) and short texts ride inline.
const InlineMax = 2 << 10

// Put stores data under key and returns its reference, or, for a scratch artifact
// (under work/) of at most InlineMax bytes, returns the reference with the bytes inline
// and stores nothing.
func Put(ctx context.Context, store blob.Store, key string, data []byte, contentType string) (schemas.ObjectRef, error) {
	if len(data) <= InlineMax && strings.HasPrefix(key, "work/") {
		sum := sha256.Sum256(data)
		return schemas.ObjectRef{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			ContentType: contentType, Inline: bytes.Clone(data)}, nil
	}
	info, err := store.Put(ctx, key, blob.NewBytesReader(data), int64(len(data)), contentType)
	if err != nil {
		return schemas.ObjectRef{}, err
	}
	return schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: info.ContentType}, nil
}

// Open reads the artifact ref points at: inline bytes from the reference (checked
// against its size and digest), others from store as store.Get does.
func Open(ctx context.Context, store blob.Store, ref schemas.ObjectRef) (io.ReadCloser, blob.Info, error) {
	if ref.Inline == nil {
		return store.Get(ctx, ref.Key)
	}
	if err := CheckInline(ref); err != nil {
		return nil, blob.Info{}, err
	}
	info := blob.Info{Key: ref.Key, Size: ref.Size, SHA256: ref.SHA256, ContentType: ref.ContentType}
	return io.NopCloser(bytes.NewReader(ref.Inline)), info, nil
}

// CheckInline reports whether ref's inline bytes are the ones it describes.
func CheckInline(ref schemas.ObjectRef) error {
	sum := sha256.Sum256(ref.Inline)
	if int64(len(ref.Inline)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return fmt.Errorf("artifact %s: its inline bytes (%d) do not match its size (%d) and digest", ref.Key, len(ref.Inline), ref.Size)
	}
	return nil
}

// Stored reports whether ref's bytes are in the object store (not inline).
func Stored(ref schemas.ObjectRef) bool { return ref.Inline == nil }
