package ocr

import (
	"context"
	"fmt"
	"image"
	"sort"
	"strings"

	"github.com/creativeai-studio/studio/schemas"
)

// Model runs one model on a batch and returns its output. It honours ctx.
type Model func(ctx context.Context, x Tensor) (Tensor, error)

// Reader chains the three models into text lines. Its fields are read-only after
// construction; Read is safe for concurrent use when the models are.
type Reader struct {
	// Det is the text detector: [1,3,H,W] in, [1,1,H,W] probabilities out.
	Det Model
	// Cls is the 0/180 angle classifier, [N,3,48,192] in, [N,2] out; nil skips it.
	Cls Model
	// Rec is the recogniser, [N,3,48,W] in, [N,T,classes] out.
	Rec  Model
	Dict *Dictionary
	// DB are the detector post-processing settings (DefaultDBOptions when zero).
	DB DBOptions
	// ClsThresh is how sure the classifier must be before a line is turned (0.9).
	ClsThresh float64
	// MinConfidence drops lines read with less confidence (PaddleOCR's drop_score 0.5).
	MinConfidence float64
}

// Read finds and reads the text of img. det is the detector's input for img (DetInput,
// or what the preprocess stage stored). Lines come in reading order with their index.
func (r *Reader) Read(ctx context.Context, img *image.NRGBA, det Tensor) ([]schemas.OCRLine, error) {
	if len(det.Shape) != 4 {
		return nil, fmt.Errorf("ocr: detector input has shape %v, want [1,3,H,W]", det.Shape)
	}
	y, err := r.Det(ctx, det)
	if err != nil {
		return nil, fmt.Errorf("ocr: detection: %w", err)
	}
	dh, dw := int(det.Shape[2]), int(det.Shape[3])
	if len(y.Data) != dh*dw {
		return nil, fmt.Errorf("ocr: detector output %v does not match its %dx%d input", y.Shape, dw, dh)
	}
	opts := r.DB
	if opts == (DBOptions{}) {
		opts = DefaultDBOptions()
	}
	b := img.Bounds()
	boxes := Boxes(y.Data, dw, dh, b.Dx(), b.Dy(), opts)
	quads := make([]Quad, len(boxes))
	for i, bx := range boxes {
		quads[i] = bx.Quad
	}
	SortReadingOrder(quads)
	crops := make([]*image.NRGBA, len(quads))
	for i, q := range quads {
		crops[i] = Crop(img, q)
	}
	angles := make([]int, len(crops))
	if r.Cls != nil && len(crops) > 0 {
		if err := r.classify(ctx, crops, angles); err != nil {
			return nil, err
		}
	}
	texts, confs, err := r.recognise(ctx, crops)
	if err != nil {
		return nil, err
	}
	if err := r.recheckTurned(ctx, crops, angles, texts, confs); err != nil {
		return nil, err
	}
	minConf := r.MinConfidence
	lines := []schemas.OCRLine{}
	for i, q := range quads {
		if confs[i] < minConf || strings.TrimSpace(texts[i]) == "" {
			continue
		}
		var box [4][2]int
		for k, p := range q {
			box[k] = [2]int{int(p.X), int(p.Y)}
		}
		lines = append(lines, schemas.OCRLine{Index: len(lines), Text: texts[i], Confidence: confs[i], Box: box, Angle: angles[i]})
	}
	return lines, nil
}

// byRatio returns the crop indices sorted by width/height, as PaddleOCR batches them,
// so each batch pads little.
func byRatio(crops []*image.NRGBA) []int {
	idx := make([]int, len(crops))
	ratio := make([]float64, len(crops))
	for i, c := range crops {
		idx[i] = i
		ratio[i] = float64(c.Bounds().Dx()) / float64(c.Bounds().Dy())
	}
	sort.SliceStable(idx, func(a, b int) bool { return ratio[idx[a]] < ratio[idx[b]] })
	return idx
}

// classify runs the angle classifier in batches and turns lines it finds upside down
// (with at least ClsThresh confidence) the right way up, recording 180 in angles.
func (r *Reader) classify(ctx context.Context, crops []*image.NRGBA, angles []int) error {
	thresh := r.ClsThresh
	if thresh == 0 {
		thresh = 0.9
	}
	idx := byRatio(crops)
	for start := 0; start < len(idx); start += BatchSize {
		part := idx[start:min(start+BatchSize, len(idx))]
		batch := make([]*image.NRGBA, len(part))
		for k, i := range part {
			batch[k] = crops[i]
		}
		y, err := r.Cls(ctx, NormalizeCrops(batch, ClsWidth))
		if err != nil {
			return fmt.Errorf("ocr: angle classification: %w", err)
		}
		if len(y.Data) != 2*len(part) {
			return fmt.Errorf("ocr: angle classifier output %v, want [%d,2]", y.Shape, len(part))
		}
		for k, i := range part {
			if p180 := y.Data[2*k+1]; p180 > y.Data[2*k] && float64(p180) > thresh {
				crops[i] = rot180(crops[i])
				angles[i] = 180
			}
		}
	}
	return nil
}

// recheckTurned reads the lines the classifier turned once more the way they were
// found, and keeps whichever reading is more confident. The mobile angle classifier
// sees a long line squeezed into 192 pixels and turns upright lines now and then
// (one of two lines of 32-pixel Liberation Sans, with 0.98 confidence, in
// TestCharacterErrorRate); the recogniser's confidence is the better judge. PaddleOCR
// itself trusts the classifier, and runs none by default.
func (r *Reader) recheckTurned(ctx context.Context, crops []*image.NRGBA, angles []int, texts []string, confs []float64) error {
	var turned []int
	var back []*image.NRGBA
	for i, a := range angles {
		if a == 180 {
			turned = append(turned, i)
			back = append(back, rot180(crops[i]))
		}
	}
	if len(turned) == 0 {
		return nil
	}
	t, c, err := r.recognise(ctx, back)
	if err != nil {
		return err
	}
	for k, i := range turned {
		if c[k] > confs[i] {
			texts[i], confs[i], angles[i], crops[i] = t[k], c[k], 0, back[k]
		}
	}
	return nil
}

// recognise reads every crop, in batches of similar width.
func (r *Reader) recognise(ctx context.Context, crops []*image.NRGBA) ([]string, []float64, error) {
	texts := make([]string, len(crops))
	confs := make([]float64, len(crops))
	idx := byRatio(crops)
	for start := 0; start < len(idx); start += BatchSize {
		part := idx[start:min(start+BatchSize, len(idx))]
		batch := make([]*image.NRGBA, len(part))
		for k, i := range part {
			batch[k] = crops[i]
		}
		y, err := r.Rec(ctx, NormalizeCrops(batch, RecWidth(batch)))
		if err != nil {
			return nil, nil, fmt.Errorf("ocr: recognition: %w", err)
		}
		if len(y.Shape) != 3 || y.Shape[0] != int64(len(part)) {
			return nil, nil, fmt.Errorf("ocr: recogniser output %v, want [%d,T,classes]", y.Shape, len(part))
		}
		t, c := int(y.Shape[1]), int(y.Shape[2])
		for k, i := range part {
			texts[i], confs[i], err = r.Dict.Decode(y.Data[k*t*c:(k+1)*t*c], t, c)
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return texts, confs, nil
}

// Join is the text of lines in reading order, one line each.
func Join(lines []schemas.OCRLine) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = l.Text
	}
	return strings.Join(parts, "\n")
}
