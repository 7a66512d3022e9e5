package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// importNCNN converts an ncnn model pair to ONNX and writes a manifest beside it, so
// the folder can be served with --model-dir.
func importNCNN(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio models import-ncnn", flag.ContinueOnError)
	param := fs.String("param", "", "the ncnn .param file")
	bin := fs.String("bin", "", "the ncnn .bin file")
	name := fs.String("name", "", "model name (a subject token, e.g. realesrgan)")
	version := fs.String("version", "", "model version (e.g. my-x4)")
	task := fs.String("task", string(schemas.TaskUpscale), "task the model serves (upscale or style-transfer)")
	scale := fs.Int("scale", 4, "output size over input size")
	license := fs.String("license", "", "licence of the weights (SPDX id)")
	out := fs.String("out", ".", "folder for model.onnx and the manifest (use it as --model-dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *param == "" || *bin == "" || *name == "" || *version == "" {
		return errors.New("--param, --bin, --name and --version are required")
	}
	onnx, err := models.ConvertNCNN(*param, *bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	file := *name + "-" + *version + ".onnx"
	if err := os.WriteFile(filepath.Join(*out, file), onnx, 0o644); err != nil {
		return err
	}
	manifest := models.ImageManifest(*name, *version, *task, *scale, file, onnx, *license)
	mpath := filepath.Join(*out, *name+"-"+*version+".yaml")
	if _, err := models.ParseManifest(mpath, []byte(manifest)); err != nil {
		return fmt.Errorf("generated manifest is invalid: %w", err)
	}
	if err := os.WriteFile(mpath, []byte(manifest), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes) and %s\nserve it with: studio up --model-dir %s\n", filepath.Join(*out, file), len(onnx), mpath, *out)
	return nil
}
