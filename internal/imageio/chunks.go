package imageio

import (
	"encoding/binary"
	"fmt"
)

// The decoding-work bounds of PNG and WebP, the counterpart of jpegScans: a walk over
// the container's chunks that reads no pixel data, O(chunks), before any decoder runs.
//
// What each bound stops:
//   - Chunks (Limits.MaxChunks): a 10 MiB PNG of empty 12-byte chunks has 870,000 of
//     them, a WebP of empty RIFF chunks 1.3 million; each costs the decoder a header
//     read and a CRC, none a pixel. Real files have a handful of chunks plus the IDATs:
//     libpng writes 8 KiB IDATs, so a 10 MiB PNG has about 1,300.
//   - Metadata bytes (Limits.MaxMetadataBytes): PNG ancillary chunks and WebP chunks
//     other than VP8X, VP8, VP8L and ALPH: text, EXIF, XMP, the colour profile. Bytes
//     the pipeline carries along and never shows.
//   - Decoded bytes (Limits.MaxDecodedBytes): what inflating a PNG's IDAT stream
//     produces, every scanline of every interlace pass with its filter byte. 16-bit
//     samples double it; an interlaced PNG counts twice, as image/png decodes each of
//     its seven passes into an image of its own before merging them.
//   - The deflate ratio (checked by Decode, not Inspect): deflate expands at most
//     1032:1, so IDAT data that could not hold the declared scanlines is refused
//     before inflating; and image/png stops after the declared scanlines plus one byte
//     ("too much pixel data"), so a small IHDR over a huge inflating stream costs
//     nothing either. Together: a zlib bomb costs at most the declared image.
//   - WebP canvas against data: the RIFF size must fit the file, the VP8X canvas must
//     be the size of the VP8/VP8L frame inside, and a lossy frame's first partition
//     must fit its chunk and hold at least one bit per macroblock (vp8Size: the
//     decoding work of a lossy frame is then at most 2048 pixels per byte); an animation (ANIM/ANMF chunks, with or without the VP8X
//     flag) is refused, as the decoder has no animation support and would skip every
//     frame to fail at the end.

// PNG chunk types the walk needs.
const (
	pngIHDR = "IHDR"
	pngIDAT = "IDAT"
	pngIEND = "IEND"
)

// deflateMaxRatio is the most deflate can expand: 258 bytes from a code of at least
// two bits, 1032:1. The zlib wrapper adds 6 bytes.
const deflateMaxRatio = 1032

// pngWork is what the chunk walk of a PNG found.
type pngWork struct {
	width, height    int
	depth, colorType byte
	interlaced       bool
	chunks           int
	metadataBytes    int64
	idatBytes        int64
}

// walkPNG reads the chunk headers of a PNG up to IEND (or where the file breaks: the
// decoder reports the damage), stopping once chunks exceed maxChunks.
func walkPNG(data []byte, maxChunks int) pngWork {
	var w pngWork
	i := len(pngSignature)
	for i+12 <= len(data) {
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if n > int64(len(data)-i-12) {
			return w
		}
		if w.chunks++; w.chunks > maxChunks {
			return w
		}
		p := data[i+8 : i+8+int(n)]
		switch {
		case typ == pngIHDR && len(p) == 13:
			w.width = int(binary.BigEndian.Uint32(p[0:]))
			w.height = int(binary.BigEndian.Uint32(p[4:]))
			w.depth, w.colorType, w.interlaced = p[8], p[9], p[12] == 1
		case typ == pngIDAT:
			w.idatBytes += n
		case typ == pngIEND:
			return w
		case typ[0]&0x20 != 0: // lower-case first letter: ancillary
			w.metadataBytes += n
		}
		i += 12 + int(n)
	}
	return w
}

// pngChannels is the samples per pixel of a PNG colour type, 0 for an invalid one.
func pngChannels(colorType byte) int {
	switch colorType {
	case 0, 3: // grey, palette
		return 1
	case 2:
		return 3
	case 4:
		return 2
	case 6:
		return 4
	}
	return 0
}

// adam7 is the Adam7 interlace: for each pass, the first column and row and the steps.
var adam7 = [7][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}

// inflatedBytes is the size of the zlib stream's output that the IHDR declares:
// every scanline of every pass, each with its filter byte.
func (w pngWork) inflatedBytes() int64 {
	bits := int64(w.depth) * int64(pngChannels(w.colorType))
	rows := func(width, height int64) int64 {
		if width <= 0 || height <= 0 {
			return 0
		}
		return height * (1 + (width*bits+7)/8)
	}
	if !w.interlaced {
		return rows(int64(w.width), int64(w.height))
	}
	var n int64
	for _, p := range adam7 {
		pw := (int64(w.width) - int64(p[0]) + int64(p[2]) - 1) / int64(p[2])
		ph := (int64(w.height) - int64(p[1]) + int64(p[3]) - 1) / int64(p[3])
		n += rows(pw, ph)
	}
	return n
}

// decodedBytes is the work Limits.MaxDecodedBytes bounds: the inflated stream, twice
// for an interlaced image (its passes are decoded into images of their own first).
func (w pngWork) decodedBytes() int64 {
	if w.interlaced {
		return 2 * w.inflatedBytes()
	}
	return w.inflatedBytes()
}

// checkPNGWork applies the chunk, metadata and decoded-bytes bounds (Inspect).
func checkPNGWork(data []byte, lim Limits) error {
	w := walkPNG(data, lim.MaxChunks)
	if w.chunks > lim.MaxChunks {
		return newError(ErrTooLarge,
			"the PNG has more than %d chunks, which only makes it slow to decode: re-save it with a standard encoder (or an optimiser such as oxipng) and upload it again",
			lim.MaxChunks)
	}
	if w.metadataBytes > lim.MaxMetadataBytes {
		return newError(ErrTooLarge,
			"the PNG carries %s of metadata (text, EXIF, colour profile chunks), more than the %s limit: strip the metadata (re-export without it) and upload it again",
			humanBytes(w.metadataBytes), humanBytes(lim.MaxMetadataBytes))
	}
	if n := w.decodedBytes(); n > lim.MaxDecodedBytes {
		what := ""
		if w.depth == 16 {
			what = " at 16 bits per sample"
		}
		if w.interlaced {
			what += ", interlaced"
		}
		return newError(ErrTooLarge,
			"the PNG is %dx%d pixels%s, %s to decode, more than the %s limit: save it at 8 bits per sample without interlacing, or smaller, and upload it again",
			w.width, w.height, what, humanBytes(n), humanBytes(lim.MaxDecodedBytes))
	}
	return nil
}

// checkPNGData refuses, before inflating, IDAT data too small to expand to the
// declared scanlines (Decode; Inspect reads headers only).
func checkPNGData(data []byte, lim Limits) error {
	w := walkPNG(data, lim.MaxChunks)
	if need := w.inflatedBytes(); need > 0 && (w.idatBytes-6)*deflateMaxRatio < need {
		return corrupt(FormatPNG, fmt.Errorf("%d bytes of image data cannot inflate to the %d bytes that %dx%d pixels need", w.idatBytes, need, w.width, w.height))
	}
	return nil
}

// webpWork is what the chunk walk of a WebP found.
type webpWork struct {
	chunks        int
	frames        int // ANMF chunks
	animation     bool
	metadataBytes int64
	canvas        bool // a VP8X chunk declared the canvas
	canvasW       int
	canvasH       int
	frameW        int // of the first VP8 or VP8L chunk, 0 if none
	frameH        int
	problem       string // what is inconsistent, "" if nothing
}

// walkWebP reads the RIFF chunk headers of a WebP, stopping once chunks exceed
// maxChunks.
func walkWebP(data []byte, maxChunks int) webpWork {
	var w webpWork
	if len(data) < 12 {
		return w
	}
	if riff := int64(binary.LittleEndian.Uint32(data[4:])); riff+8 > int64(len(data)) {
		w.problem = fmt.Sprintf("the RIFF header declares %d bytes but the file has %d", riff+8, len(data))
		return w
	}
	i := 12
	for i+8 <= len(data) {
		fourcc := string(data[i : i+4])
		n := int64(binary.LittleEndian.Uint32(data[i+4:]))
		if n > int64(len(data)-i-8) {
			w.problem = fmt.Sprintf("the %q chunk declares %d bytes but %d remain", fourcc, n, len(data)-i-8)
			return w
		}
		if w.chunks++; w.chunks > maxChunks {
			return w
		}
		p := data[i+8 : i+8+int(n)]
		switch fourcc {
		case "VP8X":
			if len(p) >= 10 {
				w.canvas = true
				w.animation = w.animation || p[0]&(1<<1) != 0
				w.canvasW = 1 + (int(p[4]) | int(p[5])<<8 | int(p[6])<<16)
				w.canvasH = 1 + (int(p[7]) | int(p[8])<<8 | int(p[9])<<16)
			}
		case "VP8 ":
			if w.frameW == 0 {
				w.frameW, w.frameH = vp8Size(p, &w.problem)
			}
		case "VP8L":
			if w.frameW == 0 && len(p) >= 5 && p[0] == 0x2f {
				bits := binary.LittleEndian.Uint32(p[1:])
				w.frameW, w.frameH = 1+int(bits&0x3fff), 1+int(bits>>14&0x3fff)
			}
		case "ALPH":
		case "ANIM":
			w.animation = true
		case "ANMF":
			w.animation = true
			w.frames++
		default:
			w.metadataBytes += n
		}
		i += 8 + int(n) + int(n&1)
	}
	return w
}

// vp8MinBitsPerMacroblock is the floor on a VP8 key frame's first partition: it holds
// every macroblock's prediction modes, coded with fixed key-frame probabilities (RFC
// 6386 section 11.2), so the cheapest luma mode costs -log2(145/256) = 0.82 bits and
// the cheapest chroma mode -log2(142/256) = 0.85 bits: at least 1.67 bits a macroblock
// in any valid frame. One bit leaves a 40% margin.
const vp8MinBitsPerMacroblock = 1

// vp8Size reads the size of a VP8 key frame, and notes in problem a first partition
// that does not fit its chunk or is too small for the frame's macroblocks. The second
// is the work bound of lossy WebP: golang.org/x/image/vp8 reads zeros past the end of
// its partitions and reconstructs every macroblock before reporting the truncation, so
// a few hundred bytes declaring 40 megapixels would cost a full 40-megapixel decode.
// With the floor, decoding work is at most 8 macroblocks (2048 pixels) per byte of
// the first partition.
func vp8Size(p []byte, problem *string) (w, h int) {
	if len(p) < 10 || p[3] != 0x9d || p[4] != 0x01 || p[5] != 0x2a {
		return 0, 0 // not a key frame: the decoder says so
	}
	w, h = int(binary.LittleEndian.Uint16(p[6:])&0x3fff), int(binary.LittleEndian.Uint16(p[8:])&0x3fff)
	tag := uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16
	part := int64(tag >> 5)
	mbs := int64((w+15)/16) * int64((h+15)/16)
	switch {
	case part > int64(len(p)-10):
		*problem = fmt.Sprintf("the VP8 frame's first partition declares %d bytes but its chunk holds %d", part, len(p)-10)
	case part*8 < mbs*vp8MinBitsPerMacroblock:
		*problem = fmt.Sprintf("the VP8 frame (%dx%d, %d macroblocks) has a first partition of %d bytes, too few for the modes of its macroblocks (every encoder writes more than one bit each): the file is truncated or crafted to make decoding slow; re-export it", w, h, mbs, part)
	}
	return w, h
}

// checkWebPWork applies the chunk and metadata bounds and the canvas checks (Inspect).
func checkWebPWork(data []byte, lim Limits) error {
	w := walkWebP(data, lim.MaxChunks)
	switch {
	case w.chunks > lim.MaxChunks:
		return newError(ErrTooLarge,
			"the WebP has more than %d chunks, which only makes it slow to read: re-save it with a standard encoder and upload it again",
			lim.MaxChunks)
	case w.animation:
		return newError(ErrUnsupportedFormat,
			"animated WebP images (this one has %d frames) are not supported: export one frame as a still WebP, PNG or JPEG and upload it again", w.frames)
	case w.problem != "":
		return corrupt(FormatWebP, fmt.Errorf("%s", w.problem))
	case w.metadataBytes > lim.MaxMetadataBytes:
		return newError(ErrTooLarge,
			"the WebP carries %s of metadata (EXIF, XMP, colour profile chunks), more than the %s limit: strip the metadata (re-export without it) and upload it again",
			humanBytes(w.metadataBytes), humanBytes(lim.MaxMetadataBytes))
	case w.canvas && w.frameW != 0 && (w.frameW != w.canvasW || w.frameH != w.canvasH):
		return corrupt(FormatWebP, fmt.Errorf("the canvas is declared %dx%d but its image data is %dx%d", w.canvasW, w.canvasH, w.frameW, w.frameH))
	}
	return nil
}
