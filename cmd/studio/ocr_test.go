package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// TestSubmitOCRPrintsTheText runs `studio up` with the PaddleOCR models and `studio
// submit --task ocr` on scikit-image's page.png: submit saves the text and overlay
// results and prints the lines it read.
func TestSubmitOCRPrintsTheText(t *testing.T) {
	if testing.Short() {
		t.Skip("real-model test skipped with -short")
	}
	need := append([]assets.Asset{assets.ONNXRuntimeCPU, assets.PhotoPage}, assets.Web...)
	ms, err := models.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID() == "ppocr@v4" {
			need = append(need, m.Asset())
			for role, p := range m.Parts {
				need = append(need, m.PartAsset(role, p.Source))
			}
			for role, f := range m.Files {
				need = append(need, m.PartAsset(role, f))
			}
		}
	}
	needCached(t, "studio submit --task ocr", need...)

	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port(t)), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--models", "ppocr@v4", "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	token := tokenLine.FindStringSubmatch(up.stdout.String())[1]

	out := t.TempDir()
	page := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.PhotoPage.Path))
	r := studio(t, append(slices.Clone(env), "STUDIO_TOKEN="+token), "submit", "--server", api, "--task", "ocr", "-o", out, page)
	// The title is printed as read (the recogniser may run its two words together).
	expect(t, r, 0, "text (", "    Region-based", "segmentation\n", "markers of the coins", "page.overlay.png")
	data, err := os.ReadFile(filepath.Join(out, "page.text.json"))
	if err != nil {
		t.Fatalf("submit saved no text result: %v\n%s", err, r)
	}
	var res schemas.OCRResult
	if err := json.Unmarshal(data, &res); err != nil || res.Schema != schemas.SchemaOCRResult || len(res.Lines) < 6 {
		t.Fatalf("page.text.json: %v, %d lines\n%s", err, len(res.Lines), data)
	}
	if err := up.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}
