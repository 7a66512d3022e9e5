package imageio

import (
	"fmt"
	"image"
	"image/png"
	"io"
	"sync"
)

// pngEncoder encodes the image types that writePNG (png.go) does not handle.
// It is shared because it holds no per-call state; its buffer pool reuses the
// deflate state (hundreds of KB) across calls.
//
// BestSpeed because PNG encoding is on the request hot path: every generated
// image is encoded before the user sees it. On 1024x1024 photo-like images
// it is about 1.5-2x faster than the default level for files only ~5%
// larger; latency matters more than storage here.
var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffers{}}

// EncodePNG writes img to w as a PNG, 8-bit RGB when img is opaque. It writes
// *image.NRGBA, *image.RGBA and *image.Gray itself, several times faster than
// image/png (see png.go), and leaves other types to image/png. It is safe for
// concurrent use.
func EncodePNG(w io.Writer, img image.Image) error {
	var err error
	if l, ok := pngLayoutOf(img); ok {
		err = writePNG(w, img.Bounds(), l)
	} else {
		err = pngEncoder.Encode(w, img)
	}
	if err != nil {
		return fmt.Errorf("imageio: encode PNG: %w", err)
	}
	return nil
}

// pngBuffers implements png.EncoderBufferPool with a sync.Pool.
type pngBuffers struct{ pool sync.Pool }

var _ png.EncoderBufferPool = (*pngBuffers)(nil)

func (p *pngBuffers) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngBuffers) Put(b *png.EncoderBuffer) { p.pool.Put(b) }
