package replay

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

// Metrics compares one shadow output with the original's; each field is set only for
// the tasks it applies to.
type Metrics struct {
	// Output names the result that was compared ("cutout", "image", "text").
	Output string `json:"output"`
	// IoU is the mask IoU of remove-background (MaskIoU).
	IoU *float64 `json:"iou,omitempty"`
	// PSNR (dB) and SSIM compare images: upscale, style-transfer, generate.
	PSNR *float64 `json:"psnr,omitempty"`
	SSIM *float64 `json:"ssim,omitempty"`
	// TextEqual and CER compare the text an ocr job read.
	TextEqual *bool    `json:"text_equal,omitempty"`
	CER       *float64 `json:"cer,omitempty"`
}

// outputLimits bound a result decoded for comparison: results (an upscale ×4) may be
// larger than the inputs ingest takes.
var outputLimits = imageio.Limits{MaxBytes: 256 << 20, MaxPixels: 400_000_000, MaxSide: 65535}

// Compare measures the shadow's results against the original's, both by result name
// (the job record's Results) with their bytes: remove-background by mask IoU of the
// first result both have (the cut-out's alpha), ocr by the text of its OCR result, every
// other task by PSNR and SSIM of the first image both have. An error says why they
// could not be compared (no common result, an undecodable one, different sizes).
func Compare(task schemas.Task, original, shadow map[string][]byte) (Metrics, error) {
	var names []string
	for n := range original {
		if _, ok := shadow[n]; ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return Metrics{}, fmt.Errorf("replay: the shadow run has none of the original's results")
	}
	if task == schemas.TaskOCR {
		for _, n := range names {
			a, okA := ocrText(original[n])
			b, okB := ocrText(shadow[n])
			if okA && okB {
				eq, cer := a == b, CER(a, b)
				return Metrics{Output: n, TextEqual: &eq, CER: &cer}, nil
			}
		}
		return Metrics{}, fmt.Errorf("replay: no OCR result (%s) to compare", schemas.SchemaOCRResult)
	}
	for _, n := range names {
		a, _, errA := imageio.Decode(original[n], outputLimits)
		b, _, errB := imageio.Decode(shadow[n], outputLimits)
		if errA != nil || errB != nil {
			continue // not an image (an OCR overlay's JSON, say): try the next
		}
		m := Metrics{Output: n}
		if task == schemas.TaskRemoveBackground {
			iou, err := MaskIoU(a, b)
			if err != nil {
				return m, fmt.Errorf("replay: result %s: %w", n, err)
			}
			m.IoU = &iou
			return m, nil
		}
		psnr, err := PSNR(a, b)
		if err != nil {
			return m, fmt.Errorf("replay: result %s: %w", n, err)
		}
		ssim, err := SSIM(a, b)
		if err != nil {
			return m, fmt.Errorf("replay: result %s: %w", n, err)
		}
		m.PSNR, m.SSIM = &psnr, &ssim
		return m, nil
	}
	return Metrics{}, fmt.Errorf("replay: no result of both runs decodes as an image")
}

func ocrText(data []byte) (string, bool) {
	var r schemas.OCRResult
	if json.Unmarshal(data, &r) != nil || r.Schema != schemas.SchemaOCRResult {
		return "", false
	}
	return r.Text, true
}
