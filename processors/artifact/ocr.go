package artifact

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/schemas"
)

// MaxOCRResultBytes bounds a stored OCR result read back: a dense page is tens of KB.
const MaxOCRResultBytes = 16 << 20

// PutOCR stores an OCR result as JSON (application/json) under key.
func PutOCR(ctx context.Context, store blob.Store, key string, r schemas.OCRResult) (schemas.ObjectRef, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return schemas.ObjectRef{}, fmt.Errorf("encode OCR result: %w", err)
	}
	data = append(data, '\n')
	ref, err := Put(ctx, store, key, data, "application/json")
	if err != nil {
		return schemas.ObjectRef{}, err
	}
	ref.ContentType, ref.Width, ref.Height = "application/json", r.Width, r.Height
	return ref, nil
}

// GetOCR reads an OCR result stored by PutOCR.
func GetOCR(ctx context.Context, store blob.Store, ref schemas.ObjectRef) (schemas.OCRResult, error) {
	var r schemas.OCRResult
	rc, _, err := Open(ctx, store, ref)
	if err != nil {
		return r, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxOCRResultBytes+1))
	if err != nil {
		return r, fmt.Errorf("read OCR result %s: %w", ref.Key, err)
	}
	if len(data) > MaxOCRResultBytes {
		return r, fmt.Errorf("OCR result %s is over %d bytes", ref.Key, MaxOCRResultBytes)
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Schema != schemas.SchemaOCRResult {
		return r, fmt.Errorf("OCR result %s is not a %s document (%v)", ref.Key, schemas.SchemaOCRResult, err)
	}
	return r, nil
}

// RGBPixels returns img's colour as [1,3,H,W] R, G, B planes (alpha dropped): how a
// stage hands a decoded image on without decoding it again.
func RGBPixels(img *image.NRGBA) Pixels {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	plane := w * h
	data := make([]byte, 3*plane)
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			i := y*w + x
			data[i], data[plane+i], data[2*plane+i] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
	return Pixels{Shape: []int64{1, 3, int64(h), int64(w)}, Data: data}
}

// RGBImage is RGBPixels' inverse: an opaque image from [1,3,H,W] R, G, B planes.
func RGBImage(p Pixels) (*image.NRGBA, error) {
	if len(p.Shape) != 4 || p.Shape[0] != 1 || p.Shape[1] != 3 || Elements(p.Shape) != int64(len(p.Data)) {
		return nil, fmt.Errorf("pixels of shape %v with %d values are not a [1,3,H,W] image", p.Shape, len(p.Data))
	}
	h, w := int(p.Shape[2]), int(p.Shape[3])
	plane := w * h
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range plane {
		q := img.Pix[4*i : 4*i+4 : 4*i+4]
		q[0], q[1], q[2], q[3] = p.Data[i], p.Data[plane+i], p.Data[2*plane+i], 255
	}
	return img, nil
}
