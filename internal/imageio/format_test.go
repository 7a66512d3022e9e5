package imageio

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name    string
		head    []byte
		want    Format
		wantErr error
		wantMsg string // substring of the message a person reads
	}{
		{name: "a JPEG is recognised by its SOI marker", head: encodeJPEG(t, gridImage()), want: FormatJPEG},
		{name: "a PNG is recognised by its signature", head: encodePNG(t, gridImage()), want: FormatPNG},
		{name: "a lossless WebP is recognised by its RIFF form type", head: losslessWebP(2, 2, func(x, y int) bool { return x == y }), want: FormatWebP},
		{name: "a still extended WebP is accepted", head: vp8xWebP(10, 10, 0), want: FormatWebP},
		{name: "an animated WebP is refused by name", head: vp8xWebP(10, 10, 1<<1), wantErr: ErrUnsupportedFormat, wantMsg: "animated WebP images are not supported: send JPEG, PNG or WebP"},
		{name: "a GIF is refused by name", head: encodeGIF(t), wantErr: ErrUnsupportedFormat, wantMsg: "GIF images are not supported: send JPEG, PNG or WebP"},
		{name: "an old GIF87a is refused by name", head: []byte("GIF87a\x01\x00\x01\x00"), wantErr: ErrUnsupportedFormat, wantMsg: "GIF images"},
		{name: "a PDF is refused by name", head: []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj"), wantErr: ErrUnsupportedFormat, wantMsg: "PDF documents are not supported"},
		{name: "a BMP is refused by name", head: bmpBytes(), wantErr: ErrUnsupportedFormat, wantMsg: "BMP images are not supported"},
		{name: "a little-endian TIFF is refused by name", head: []byte("II*\x00\x08\x00\x00\x00"), wantErr: ErrUnsupportedFormat, wantMsg: "TIFF images"},
		{name: "a big-endian TIFF is refused by name", head: []byte("MM\x00*\x00\x00\x00\x08"), wantErr: ErrUnsupportedFormat, wantMsg: "TIFF images"},
		{name: "an iPhone HEIC is refused by name", head: []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), wantErr: ErrUnsupportedFormat, wantMsg: "HEIC images are not supported"},
		{name: "an AVIF is refused by name", head: []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"), wantErr: ErrUnsupportedFormat, wantMsg: "AVIF images"},
		{name: "an AVIF with a generic major brand is named by its compatible brand", head: []byte("\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"), wantErr: ErrUnsupportedFormat, wantMsg: "AVIF images"},
		{name: "an MP4 video is refused by name", head: []byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"), wantErr: ErrUnsupportedFormat, wantMsg: "MP4/MOV videos"},
		{name: "an SVG is refused by name", head: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), wantErr: ErrUnsupportedFormat, wantMsg: "SVG images are not supported"},
		{name: "an SVG with a BOM and XML prolog is refused by name", head: []byte("\xEF\xBB\xBF\n<?xml version=\"1.0\"?>\n<svg/>"), wantErr: ErrUnsupportedFormat, wantMsg: "SVG images"},
		{name: "other XML is refused by name", head: []byte(`<?xml version="1.0"?><feed/>`), wantErr: ErrUnsupportedFormat, wantMsg: "XML documents"},
		{name: "a Photoshop file is refused by name", head: []byte("8BPS\x00\x01"), wantErr: ErrUnsupportedFormat, wantMsg: "Photoshop (PSD) files"},
		{name: "a JPEG XL codestream is refused by name", head: []byte("\xFF\x0A\xFA\x7F"), wantErr: ErrUnsupportedFormat, wantMsg: "JPEG XL images"},
		{name: "an ICO is refused by name", head: []byte("\x00\x00\x01\x00\x01\x00\x10\x10"), wantErr: ErrUnsupportedFormat, wantMsg: "ICO icons"},
		{name: "zero bytes are reported as empty", head: nil, wantErr: ErrEmpty, wantMsg: "the file is empty"},
		{name: "random bytes are not an image", head: randomBytes(1024), wantErr: ErrNotImage, wantMsg: "not an image"},
		{name: "text starting with BM is not mistaken for a BMP", head: []byte("BMW sales figures for the quarter"), wantErr: ErrNotImage},
		{name: "a WAV file is a RIFF but not an image", head: []byte("RIFF\x24\x00\x00\x00WAVEfmt "), wantErr: ErrNotImage},
		{name: "a JPEG prefix too short to be sure is not an image", head: []byte{0xFF, 0xD8}, wantErr: ErrNotImage},
		{name: "HTML is not an image", head: []byte("<!doctype html><html>"), wantErr: ErrNotImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sniff(tt.head)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Empty(t, got)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assertTellsWhatToDo(t, err)
		})
	}
}

func TestFormatContentType(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		want string
	}{
		{name: "JPEG", f: FormatJPEG, want: "image/jpeg"},
		{name: "PNG", f: FormatPNG, want: "image/png"},
		{name: "WebP", f: FormatWebP, want: "image/webp"},
		{name: "an unknown format is opaque bytes", f: Format("gif"), want: "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.f.ContentType())
		})
	}
}

// assertTellsWhatToDo checks that a message meant for people has the
// "what went wrong: what to do" shape and does not leak the Go prefix.
func assertTellsWhatToDo(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	assert.NotContains(t, msg, "imageio:", "message is for people, not for Go programmers")
	actions := []string{"send", "upload", "resize", "re-save", "compress"}
	for _, a := range actions {
		if strings.Contains(msg, a) {
			return
		}
	}
	t.Errorf("message %q does not say what to do (none of %v)", msg, actions)
}
