package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

// UploadTicket is a presigned upload: PUT the file's bytes to UploadURL before
// ExpiresAt, then submit a job with {"image": {"key": Key}}.
type UploadTicket struct {
	Key       string    `json:"key" doc:"object key to reference from a job request (image.key)"`
	UploadURL string    `json:"upload_url" doc:"path to PUT the raw file to; no other credentials are needed"`
	Method    string    `json:"method" enum:"PUT"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxBytes  int64     `json:"max_bytes"`
}

// UploadedObject describes a stored upload.
type UploadedObject struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
}

// Defaults of Config.UploadQuota and UploadQuotaBytes: enough for a batch of large
// photos, far from what fills a disk.
const (
	DefaultUploadQuota            = 50
	DefaultUploadQuotaBytes int64 = 256 << 20
)

// Blobs returns the object store the service writes inputs and uploads to.
func (s *Service) Blobs() blob.Store { return s.blobs }

// uploadUsage returns the count and bytes of the presigned uploads a user has stored.
func (s *Service) uploadUsage(ctx context.Context, tenant, user string) (int, int64, error) {
	objs, err := s.blobs.List(ctx, UserUploadPrefix(tenant, user))
	if err != nil {
		return 0, 0, fmt.Errorf("count uploads: %w", err)
	}
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return len(objs), n, nil
}

// uploadQuotaProblem is the 429 of a user whose stored uploads reached the quota.
func (s *Service) uploadQuotaProblem(count int, bytes int64) *Problem {
	return problem(http.StatusTooManyRequests, "upload_quota_exceeded",
		fmt.Sprintf("you have %d uploads (%s) stored, the most one user may have is %d (%s): submit jobs for them or wait; uploads are deleted %s after they were made",
			count, humanSize(bytes), s.cfg.UploadQuota, humanSize(s.cfg.UploadQuotaBytes), "a day"))
}

func humanSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// uploadSignature signs one upload URL: the key and its expiry.
func (s *Service) uploadSignature(key string, expires int64) string {
	m := hmac.New(sha256.New, s.uploadKey)
	fmt.Fprintf(m, "PUT\n%s\n%d", key, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// uploadKey names a presigned upload: uploads/<tenant>/<user>/<id>. The owner is part
// of the key so that erasure finds a user's uploads with one listing
// (UserUploadPrefix).
func uploadKey(tenant, user, id string) string {
	return UserUploadPrefix(tenant, user) + id
}

// UserUploadPrefix is where the presigned uploads of one user are stored.
func UserUploadPrefix(tenant, user string) string {
	return schemas.UploadPrefix + tenant + "/" + user + "/"
}

// newUploadTicket presigns an upload for one user. The URL is signed by ingest rather
// than by the object store, so it works with every backend and the bytes are checked
// (type by content, pixel count) and stripped of metadata as they arrive.
func (s *Service) newUploadTicket(ctx context.Context, tenant, user string) (UploadTicket, error) {
	if _, err := schemas.UserKey(tenant, user); err != nil {
		return UploadTicket{}, problem(422, "invalid_user", "uploads need a tenant and user made of letters, digits, '-' and '_': "+err.Error())
	}
	if count, size, err := s.uploadUsage(ctx, tenant, user); err != nil {
		return UploadTicket{}, err
	} else if count >= s.cfg.UploadQuota || size >= s.cfg.UploadQuotaBytes {
		return UploadTicket{}, s.uploadQuotaProblem(count, size)
	}
	if err := s.checkStorage(ctx, tenant, 1); err != nil {
		return UploadTicket{}, err // the tenant's storage is full already
	}
	id := NewJobID()
	key := uploadKey(tenant, user, id)
	exp := time.Now().Add(s.cfg.UploadURLExpiry).UTC().Truncate(time.Second)
	sig := s.uploadSignature(key, exp.Unix())
	return UploadTicket{
		Key:       key,
		UploadURL: fmt.Sprintf("/v1/uploads/%s/%s/%s?expires=%d&signature=%s", tenant, user, id, exp.Unix(), sig),
		Method:    http.MethodPut, ExpiresAt: exp, MaxBytes: s.cfg.Limits.MaxBytes,
	}, nil
}

// acceptUpload stores the body of a presigned PUT after checking the signature, the
// size and the image header; like a direct upload, it is stored without its metadata
// (EXIF, GPS, comments).
func (s *Service) acceptUpload(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant, user, id, expires, sig string) (*UploadedObject, error) {
	key := uploadKey(tenant, user, id)
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || schemas.ValidToken(tenant) != nil || schemas.ValidToken(user) != nil || schemas.ValidToken(id) != nil ||
		!hmac.Equal([]byte(sig), []byte(s.uploadSignature(key, exp))) {
		return nil, problem(http.StatusForbidden, "invalid_signature", "the upload URL is not one this server signed; ask POST /v1/uploads for a new one",
			FieldProblem{Field: "signature", Constraint: "hmac", Message: "does not match"})
	}
	if time.Now().Unix() > exp {
		return nil, problem(http.StatusGone, "upload_url_expired", "the upload URL expired at "+time.Unix(exp, 0).UTC().Format(time.RFC3339)+"; ask POST /v1/uploads for a new one",
			FieldProblem{Field: "expires", Constraint: "maximum", Message: "in the past"})
	}
	if _, err := s.activeUser(ctx, tenant, user); err != nil {
		return nil, err // a URL signed before its user was deleted or erased stores nothing
	}
	if _, err := s.blobs.Stat(ctx, key); err == nil {
		return nil, problem(http.StatusConflict, "upload_exists", "this upload URL was used already; ask POST /v1/uploads for a new one")
	} else if !errors.Is(err, blob.ErrNotFound) {
		return nil, err
	}
	count, size, err := s.uploadUsage(ctx, tenant, user)
	if err != nil {
		return nil, err
	}
	if count >= s.cfg.UploadQuota || size >= s.cfg.UploadQuotaBytes {
		return nil, s.uploadQuotaProblem(count, size)
	}
	lim := min(s.cfg.Limits.MaxBytes, s.cfg.UploadQuotaBytes-size)
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) && lim < s.cfg.Limits.MaxBytes {
			return nil, s.uploadQuotaProblem(count, size) // it would not fit in the quota
		}
		if errors.As(err, &mbe) {
			return nil, problem(413, "image_too_large", fmt.Sprintf("the upload is larger than the %d byte limit", lim), FieldProblem{Field: "body", Constraint: "maxBytes", Message: "over the size limit"})
		}
		return nil, problem(400, "bad_upload", "reading the upload: "+err.Error())
	}
	hdr, err := imageio.Inspect(data, s.cfg.Limits)
	if err != nil {
		return nil, imageProblem(err, "body")
	}
	data = stripMetadata(data, hdr)
	if err := s.checkStorage(ctx, tenant, int64(len(data))); err != nil {
		return nil, err
	}
	info, err := s.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), hdr.Format.ContentType())
	if err != nil {
		return nil, fmt.Errorf("store upload: %w", err)
	}
	s.reserveStorage(ctx, tenant, info.Size)
	return &UploadedObject{Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: hdr.Format.ContentType(), Width: hdr.Width, Height: hdr.Height}, nil
}
