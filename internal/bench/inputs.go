package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
)

// Input is one source image: its upright pixels, from which every job's file is made
// (see Variant) and which the raw baseline runs on.
type Input struct {
	Name   string
	Pixels *image.NRGBA
}

// Photos are the cached real photos used when no --images folder is given.
var Photos = []assets.Asset{assets.PhotoAstronaut, assets.PhotoCoffee, assets.PhotoChelsea, assets.PhotoRocket}

// LoadInputs decodes the images of dir (or the cached photos, fetching them when
// missing) upright, and shrinks them so the longer side is at most maxSide when set, or
// to exactly side x side when side > 0 (the identity bench).
func LoadInputs(ctx context.Context, cacheDir, dir string, maxSide, side int) ([]Input, error) {
	type file struct {
		name string
		data []byte
	}
	var files []file
	if dir == "" {
		cache := &assets.Cache{Dir: cacheDir}
		for _, a := range Photos {
			p, err := cache.Ensure(ctx, a)
			if err != nil {
				return nil, fmt.Errorf("photo %s: %w (run `studio fetch photos` or give --images)", a.Name, err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files = append(files, file{filepath.Base(p), b})
		}
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("--images: %w", err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg", ".webp":
			default:
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			files = append(files, file{e.Name(), b})
		}
		sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
		if len(files) == 0 {
			return nil, fmt.Errorf("--images %s: no .png, .jpg or .webp files", dir)
		}
	}
	out := make([]Input, 0, len(files))
	for _, f := range files {
		img, _, err := imageio.Decode(f.data, imageio.Limits{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		in := Input{Name: f.name, Pixels: img}
		w, h := img.Rect.Dx(), img.Rect.Dy()
		switch {
		case side > 0:
			in.Pixels = imageio.ResizeBilinear(img, side, side)
		case maxSide > 0 && max(w, h) > maxSide:
			if w >= h {
				in.Pixels = imageio.ResizeBilinear(img, maxSide, max(1, h*maxSide/w))
			} else {
				in.Pixels = imageio.ResizeBilinear(img, max(1, w*maxSide/h), maxSide)
			}
		}
		out = append(out, in)
	}
	return out, nil
}

// Variant returns job i's input file: in's pixels with the low two bits of the first
// 20 colour values replaced by i (16 bits) and salt (24 bits), encoded as PNG by the
// pipeline's own encoder. Every job of a run, and (but for a 1 in 2^24 chance) of
// different runs, then has its own pixels, so neither the result cache (keyed by the
// input bytes) nor ingest's metadata stripping can make two jobs one. The change is at
// most 3 levels in 7 pixels.
func Variant(in Input, i int, salt uint32) ([]byte, error) {
	if i < 0 || i >= 1<<16 {
		return nil, fmt.Errorf("bench: job %d: at most 65536 jobs per run", i)
	}
	img := &image.NRGBA{Pix: append([]byte(nil), in.Pixels.Pix...), Stride: in.Pixels.Stride, Rect: in.Pixels.Rect}
	bits := uint64(i) | uint64(salt&(1<<24-1))<<16
	v := 0
	for p := 0; p < len(img.Pix) && v < 20; p++ {
		if p%4 == 3 {
			continue // alpha
		}
		img.Pix[p] = img.Pix[p]&^3 | uint8(bits>>(2*v))&3
		v++
	}
	if v < 20 {
		return nil, fmt.Errorf("bench: %s is too small to carry a job number (needs 7 pixels)", in.Name)
	}
	var buf bytes.Buffer
	if err := imageio.EncodePNG(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
