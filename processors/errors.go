package processors

import (
	"fmt"

	"github.com/creativeai-studio/studio/schemas"
)

// Stable error codes recorded on failed jobs.
const (
	CodeBadEvent         = "bad_event"
	CodeInvalidImage     = "invalid_image"
	CodeNotAnImage       = "not_an_image"
	CodeUnsupportedImage = "unsupported_format"
	CodeImageTooLarge    = "image_too_large"
	CodeCorruptImage     = "corrupt_image"
	CodeEmptyImage       = "empty_image"
	CodeModelUnavailable = "model_unavailable"
	CodeOutputTooLarge   = "output_too_large"
	CodeInvalidParams    = "invalid_params"
	CodeInferenceFailed  = "inference_failed"
	CodeMissingObject    = "missing_object"
	CodeMaxDeliveries    = "max_deliveries"
	// CodeDeadlineExceeded: the job was not final within its deadline (see Deadlines).
	CodeDeadlineExceeded = "deadline_exceeded"
	// CodeStageDeadline: one stage ran past its per-message deadline (Stage.Deadline).
	CodeStageDeadline = "stage_deadline_exceeded"
	CodeInternal      = "internal"
)

// Permanent returns an error that fails the job without retrying.
func Permanent(stage schemas.Stage, code, format string, args ...any) error {
	return &schemas.JobError{Code: code, Message: fmt.Sprintf(format, args...), Stage: stage}
}
