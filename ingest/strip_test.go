package ingest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/imageio"
)

// secrets are strings planted in metadata; none may survive into stored inputs.
var secrets = []string{"SecretCam", "secret-xmp", "secret-comment", "secret-iptc", "secret-text", "secret-exif", "secret-trailer"}

// exifSegment is an APP1 EXIF segment with Make and Orientation in IFD0.
func exifSegment(orientation uint16, make string) []byte {
	var t []byte
	t = append(t, "MM\x00\x2a"...)
	t = binary.BigEndian.AppendUint32(t, 8)
	t = binary.BigEndian.AppendUint16(t, 2)
	makeVal := append([]byte(make), 0)
	dataOff := uint32(8 + 2 + 2*12 + 4)
	// Make: ASCII, stored after the IFD.
	t = binary.BigEndian.AppendUint16(t, 0x010F)
	t = binary.BigEndian.AppendUint16(t, 2)
	t = binary.BigEndian.AppendUint32(t, uint32(len(makeVal)))
	t = binary.BigEndian.AppendUint32(t, dataOff)
	// Orientation: SHORT.
	t = binary.BigEndian.AppendUint16(t, 0x0112)
	t = binary.BigEndian.AppendUint16(t, 3)
	t = binary.BigEndian.AppendUint32(t, 1)
	t = binary.BigEndian.AppendUint16(t, orientation)
	t = binary.BigEndian.AppendUint16(t, 0)
	t = binary.BigEndian.AppendUint32(t, 0) // no next IFD
	t = append(t, makeVal...)
	return jpegSegment(0xE1, append([]byte("Exif\x00\x00"), t...))
}

func jpegSegment(marker byte, body []byte) []byte {
	seg := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	return append(seg, body...)
}

// jpegWithMetadata is a JPEG carrying EXIF (orientation 6: stored sideways), XMP,
// IPTC and a comment.
func jpegWithMetadata(t *testing.T) []byte {
	plain := encodeJPEG(t, photoImage(64, 40))
	var b []byte
	b = append(b, plain[:2]...)
	b = append(b, exifSegment(6, "SecretCam")...)
	b = append(b, jpegSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>secret-xmp</x:xmpmeta>"))...)
	b = append(b, jpegSegment(0xED, []byte("Photoshop 3.0\x008BIM secret-iptc"))...)
	b = append(b, jpegSegment(0xFE, []byte("secret-comment"))...)
	return append(b, plain[2:]...)
}

func pngWithMetadata(t *testing.T) []byte {
	plain := encodePNG(t, gridImage(9, 7))
	ihdrEnd := 8 + 12 + 13
	var b []byte
	b = append(b, plain[:ihdrEnd]...)
	b = append(b, pngChunk("tEXt", []byte("Comment\x00secret-text"))...)
	b = append(b, pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>secret-xmp</x:xmpmeta>"))...)
	b = append(b, pngChunk("eXIf", []byte("MM\x00\x2a\x00\x00\x00\x08secret-exif"))...)
	b = append(b, pngChunk("gAMA", []byte{0, 0, 0xB1, 0x8F})...) // kept: it changes how pixels look
	b = append(b, plain[ihdrEnd:]...)
	return append(b, "secret-trailer"...)
}

// webpWithMetadata wraps a lossless WebP in the extended format with EXIF and XMP.
func webpWithMetadata(t *testing.T) []byte {
	simple := losslessWebP(6, 5)
	vp8l := simple[12:] // the VP8L chunk, padded
	chunk := func(fourcc string, data []byte) []byte {
		c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
		c = append(c, data...)
		if len(data)%2 == 1 {
			c = append(c, 0)
		}
		return c
	}
	vp8x := []byte{0x08 | 0x04, 0, 0, 0, 5, 0, 0, 4, 0, 0} // EXIF|XMP flags, canvas 6x5
	body := []byte("WEBP")
	body = append(body, chunk("VP8X", vp8x)...)
	body = append(body, vp8l...)
	body = append(body, chunk("EXIF", []byte("MM\x00\x2a\x00\x00\x00\x08secret-exif"))...)
	body = append(body, chunk("XMP ", []byte("<x:xmpmeta>secret-xmp</x:xmpmeta>"))...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

func TestStoredInputsHaveNoMetadataButKeepOrientationAndPixels(t *testing.T) {
	tests := []struct {
		name        string
		image       []byte
		orientation int
	}{
		{"a JPEG keeps only its orientation", jpegWithMetadata(t), 6},
		{"a PNG loses text, XMP and eXIf chunks and trailing data", pngWithMetadata(t), 1},
		{"a WebP loses its EXIF and XMP chunks", webpWithMetadata(t), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, hb, err := imageio.Decode(tt.image, imageio.Limits{})
			require.NoError(t, err, "the test image must decode")
			require.Equal(t, tt.orientation, hb.Orientation)

			e := newEnv(t, ingest.Config{})
			r := e.submit(t, file(tt.image), field("task", "remove-background"))
			require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
			var job ingest.JobResponse
			require.NoError(t, json.Unmarshal(r.body, &job))
			stored := e.do(t, http.MethodGet, "/v1/jobs/"+job.ID+"/input", nil, "").body
			for _, s := range secrets {
				require.False(t, bytes.Contains(stored, []byte(s)), "%q survived into the stored input", s)
			}
			require.Less(t, len(stored), len(tt.image))
			require.Equal(t, int64(len(stored)), job.Input.Size)

			after, ha, err := imageio.Decode(stored, imageio.Limits{})
			require.NoError(t, err, "the stored input must decode")
			require.Equal(t, hb, ha, "format, upright size and orientation are unchanged")
			require.Equal(t, hb.Width, job.Input.Width)
			require.Equal(t, before.Pix, after.Pix, "pixels are unchanged: metadata is cut out, nothing is re-encoded")
		})
	}
}

func TestImagesWithoutMetadataAreStoredByteForByte(t *testing.T) {
	for _, img := range [][]byte{encodePNG(t, gridImage(4, 4)), encodeJPEG(t, photoImage(32, 32)), losslessWebP(4, 3), truncatedJPEG(t)} {
		e := newEnv(t, ingest.Config{})
		job := e.submitImage(t, img)
		require.Equal(t, img, e.do(t, http.MethodGet, "/v1/jobs/"+job.ID+"/input", nil, "").body)
	}
}

func (e *env) submitImage(t *testing.T, img []byte) ingest.JobResponse {
	t.Helper()
	r := e.submit(t, file(img), field("task", "remove-background"))
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	var job ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &job))
	return job
}
