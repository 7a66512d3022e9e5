package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Why spool: the digest must be stored with the object so Stat and Get can return it
// without reading the body. Two S3-API ways exist:
//
//   - S3's own checksums (x-amz-checksum-sha256) are per part for multipart uploads; the
//     object's checksum is then a digest of part digests ("...-N"), not of the content,
//     and full-object checksums exist only for the CRC family. Server support also
//     varies (older Ceph RGW and SeaweedFS releases ignore them).
//   - User metadata (x-amz-meta-sha256) is honoured by every S3 server, but it travels
//     with the PUT or CreateMultipartUpload request, before the body.
//
// So Put learns the digest first: it hashes a seekable body in place (bytes.Reader,
// strings.Reader, a regular *os.File) and reads it again for the upload; any other
// stream is hashed while it is copied to memory (up to spoolMemoryLimit) or to a temp
// file, which is then uploaded. Copying to a temp file costs a disk write, but it also
// gives minio-go a seekable body, so failed parts are retried and parts go up in
// parallel.

// spoolMemoryLimit is the largest stream Put buffers in memory. Typical images and
// tensors stay below it; 8 concurrent Puts then hold at most 64 MiB.
const spoolMemoryLimit = 8 << 20

// body is a Put body whose size and SHA-256 are known before the upload starts.
type body struct {
	r      io.Reader // seekable: *bytes.Reader, *io.SectionReader or *os.File
	size   int64
	sha256 string
	file   *os.File // the temp file backing r, if any
}

// Close removes the temp file, if any.
func (b *body) Close() error {
	if b.file == nil {
		return nil
	}
	err := b.file.Close()
	if rmErr := os.Remove(b.file.Name()); err == nil {
		err = rmErr
	}
	return err
}

// spool hashes r and returns a re-readable copy of it (or r itself, when it can be read
// twice). size < 0 means read to EOF; otherwise exactly size bytes are read and a shorter
// stream is an error. ctx is checked between reads, so a cancelled Put stops consuming
// its input. dir is where temp files go ("" means os.TempDir).
func spool(ctx context.Context, r io.Reader, size int64, dir string) (*body, error) {
	if b, ok, err := hashInPlace(ctx, r, size); ok || err != nil {
		return b, err
	}

	var src io.Reader = ctxReader{ctx: ctx, r: r}
	if size >= 0 {
		src = io.LimitReader(src, size)
	}
	h := sha256.New()
	var head bytes.Buffer
	if size >= 0 && size <= spoolMemoryLimit {
		head.Grow(int(size))
	}
	n, err := io.Copy(io.MultiWriter(&head, h), io.LimitReader(src, spoolMemoryLimit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if n <= spoolMemoryLimit {
		if err := checkSize(n, size); err != nil {
			return nil, err
		}
		return &body{r: bytes.NewReader(head.Bytes()), size: n, sha256: hex.EncodeToString(h.Sum(nil))}, nil
	}

	f, err := os.CreateTemp(dir, "studio-blob-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spooling a body over %d bytes to a temp file (set TMPDIR to a writable dir): %w", spoolMemoryLimit, err)
	}
	b := &body{r: f, file: f}
	if _, err := f.Write(head.Bytes()); err != nil {
		b.Close()
		return nil, fmt.Errorf("spooling the body to %s: %w", f.Name(), err)
	}
	rest, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("spooling the body to %s: %w", f.Name(), err)
	}
	if err := checkSize(n+rest, size); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Close()
		return nil, fmt.Errorf("rewinding %s: %w", f.Name(), err)
	}
	b.size, b.sha256 = n+rest, hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// hashInPlace hashes a body that can be read twice without copying it: one that reads
// at offsets and reports its position. ok is false when r is not such a body (a pipe
// *os.File fails Seek) and the caller must copy it.
func hashInPlace(ctx context.Context, r io.Reader, size int64) (b *body, ok bool, err error) {
	type readerAtSeeker interface {
		io.ReaderAt
		io.Seeker
	}
	rs, isRAS := r.(readerAtSeeker)
	if !isRAS {
		return nil, false, nil
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil
	}
	if size < 0 {
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, false, nil
		}
		size = end - start
	}
	// io.SectionReader reads at absolute offsets, so the caller's position does not
	// matter and minio-go sees a body starting at 0, as it assumes for io.ReaderAt.
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: io.NewSectionReader(rs, start, size)})
	if err != nil {
		return nil, true, fmt.Errorf("reading the body: %w", err)
	}
	if err := checkSize(n, size); err != nil {
		return nil, true, err
	}
	return &body{r: io.NewSectionReader(rs, start, size), size: size, sha256: hex.EncodeToString(h.Sum(nil))}, true, nil
}

func checkSize(got, want int64) error {
	if want >= 0 && got != want {
		return fmt.Errorf("the body has %d bytes but the declared size is %d: %w", got, want, io.ErrUnexpectedEOF)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so a Put whose context is cancelled stops
// consuming a stream that never blocks.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
