package ocr

import (
	"image"
	"math"
)

// Tensor is a float32 tensor in row-major order, as the model runs take and return it.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Classifier and recogniser input contracts (PaddleOCR's cls_image_shape "3, 48, 192"
// and rec_image_shape "3, 48, 320" with batches of 6).
const (
	// LineHeight is the height of the classifier's and recogniser's inputs.
	LineHeight = 48
	// ClsWidth is the classifier's fixed input width.
	ClsWidth = 192
	// RecMinWidth is the narrowest recogniser batch: a batch is as wide as its widest
	// crop at height 48, but never narrower.
	RecMinWidth = 320
	// BatchSize is how many crops one classifier or recogniser call takes.
	BatchSize = 6
)

// NormalizeCrops builds one classifier or recogniser batch, as PaddleOCR's
// resize_norm_img: each crop resized (ResizeLinear) to height LineHeight keeping its
// aspect ratio (width ceil(48*w/h), at most width), scaled to (v/255-0.5)/0.5 in BGR
// order (PaddleOCR reads images with OpenCV), and padded on the right with zeros to
// width. The result is [len(crops), 3, 48, width].
func NormalizeCrops(crops []*image.NRGBA, width int) Tensor {
	h := LineHeight
	plane := h * width
	data := make([]float32, len(crops)*3*plane)
	for n, c := range crops {
		b := c.Bounds()
		ratio := float64(b.Dx()) / float64(b.Dy())
		rw := int(math.Ceil(float64(h) * ratio))
		if rw > width {
			rw = width
		}
		rw = max(rw, 1)
		r := ResizeLinear(c, rw, h)
		base := n * 3 * plane
		for y := range h {
			row := r.Pix[y*r.Stride:]
			for x := range rw {
				p := row[4*x : 4*x+3]
				i := y*width + x
				// BGR planes.
				data[base+i] = float32(p[2])/127.5 - 1
				data[base+plane+i] = float32(p[1])/127.5 - 1
				data[base+2*plane+i] = float32(p[0])/127.5 - 1
			}
		}
	}
	return Tensor{Shape: []int64{int64(len(crops)), 3, int64(h), int64(width)}, Data: data}
}

// RecWidth is the recogniser input width for a batch of crops: LineHeight times the
// largest width/height ratio among them, at least RecMinWidth (truncated, as
// PaddleOCR's int(imgH * max_wh_ratio)).
func RecWidth(crops []*image.NRGBA) int {
	ratio := float64(RecMinWidth) / float64(LineHeight)
	for _, c := range crops {
		b := c.Bounds()
		ratio = math.Max(ratio, float64(b.Dx())/float64(b.Dy()))
	}
	return int(float64(LineHeight) * ratio)
}

// DetInput is the detector's input for img: resized to DetSize with ResizeLinear and
// normalised to (v-mean)/std per channel in BGR order, where mean and std are given for
// R, G and B (the manifest's convention). The preprocess stage stores the same resized
// pixels and the inference stage normalises them; DetInput is the direct path.
func DetInput(img *image.NRGBA, mean, std [3]float32) Tensor {
	b := img.Bounds()
	w, h := DetSize(b.Dx(), b.Dy(), DetLimitSide, DetMultiple)
	r := ResizeLinear(img, w, h)
	plane := w * h
	data := make([]float32, 3*plane)
	for y := range h {
		row := r.Pix[y*r.Stride:]
		for x := range w {
			p := row[4*x : 4*x+3]
			i := y*w + x
			for k := range 3 { // plane k holds channel 2-k (B, G, R)
				c := 2 - k
				data[k*plane+i] = (float32(p[c]) - mean[c]) / std[c]
			}
		}
	}
	return Tensor{Shape: []int64{1, 3, int64(h), int64(w)}, Data: data}
}
