package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func testImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 24, 16))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}

func TestVariantsDifferPerJobAndBarelyFromThePhoto(t *testing.T) {
	in := Input{Name: "test.png", Pixels: testImage()}
	seen := map[[32]byte]int{}
	for _, job := range []struct {
		i    int
		salt uint32
	}{{0, 1}, {1, 1}, {2, 1}, {65535, 1}, {0, 2}, {1, 1 << 23}} {
		b, err := Variant(in, job.i, job.salt)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if prev, dup := seen[sum]; dup {
			t.Fatalf("job %+v has the same bytes as job %d: the result cache would answer it", job, prev)
		}
		seen[sum] = job.i
		got, hdr, err := imageio.Decode(b, imageio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Format != imageio.FormatPNG || got.Rect != in.Pixels.Rect {
			t.Fatalf("variant is %s %v", hdr.Format, got.Rect)
		}
		changed := 0
		for p := range got.Pix {
			d := int(got.Pix[p]) - int(in.Pixels.Pix[p])
			if d != 0 {
				changed++
			}
			if d < -3 || d > 3 || (d != 0 && (p%4 == 3 || p >= 7*4)) {
				t.Fatalf("job %+v: value %d changed by %d; only the low bits of 7 pixels' colours may change", job, p, d)
			}
		}
		if changed == 0 && job.i != 0 {
			t.Errorf("job %+v: no pixel changed", job)
		}
	}
	if _, err := Variant(Input{Name: "tiny", Pixels: image.NewNRGBA(image.Rect(0, 0, 2, 2))}, 1, 1); err == nil {
		t.Error("a 2x2 image cannot carry a job number, yet Variant accepted it")
	}
}

func TestParseProcStatus(t *testing.T) {
	st, err := parseProcStatus([]byte("Name:\tstudio\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t9\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.VmRSS != 1024<<10 || st.VmHWM != 2048<<10 {
		t.Errorf("got %+v, want VmRSS 1 MiB and VmHWM 2 MiB", st)
	}
	if _, err := parseProcStatus([]byte("Name:\tstudio\n")); err == nil {
		t.Error("a status without VmRSS parsed")
	}
	if st, err := ReadProcStatus(); err == nil && (st.VmRSS <= 0 || st.VmHWM < st.VmRSS) {
		t.Errorf("this process: %+v", st)
	}
}

func TestDistUsesNearestRank(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	d := distOf(v)
	if d.N != 100 || d.P50 != 50 || d.P95 != 95 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Errorf("distOf(1..100) = %+v", d)
	}
	if d := distOf([]float64{7}); d.P50 != 7 || d.P99 != 7 {
		t.Errorf("one value: %+v", d)
	}
	if d := distOf(nil); d != (Dist{}) {
		t.Errorf("no values: %+v", d)
	}
}

func TestSummariseReadsStagesQueuesAndFailures(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	stages := map[schemas.Stage]*schemas.StageTiming{
		schemas.StagePreprocess:  {StartedAt: at(10), FinishedAt: at(30), DurationMS: 20},
		schemas.StageInference:   {StartedAt: at(35), FinishedAt: at(135), DurationMS: 100, BatchSize: 2},
		schemas.StagePostprocess: {StartedAt: at(140), FinishedAt: at(160), DurationMS: 20},
		schemas.StageStore:       {StartedAt: at(161), FinishedAt: at(170), DurationMS: 9},
	}
	ok := &schemas.JobRecord{ID: "a", Status: schemas.StatusSucceeded, SubmittedAt: at(0), FinishedAt: at(170), Stages: stages}
	failed := &schemas.JobRecord{ID: "b", Status: schemas.StatusFailed, Error: &schemas.JobError{Code: "corrupt_image", Message: "bad", Stage: schemas.StagePreprocess}}
	p := summarise([]outcome{
		{index: 0, id: "a", start: t0, accepted: at(2), done: at(200), rec: ok},
		{index: 1, id: "b", start: at(1), accepted: at(3), done: at(50), rec: failed},
		{index: 2, start: at(2), submitErr: io.ErrUnexpectedEOF},
	})
	if p.Succeeded != 1 || p.Failed != 1 || p.SubmitErrors != 1 || p.ErrorCodes["corrupt_image"] != 1 || p.CacheHits != 0 {
		t.Fatalf("counts: %+v", p)
	}
	if p.WallSeconds != 0.2 || p.JobsPerSecond != 5 {
		t.Errorf("wall %v s, %v jobs/s; want 0.2 s and 5 jobs/s (one success from the first submit to the last completion)", p.WallSeconds, p.JobsPerSecond)
	}
	want := map[schemas.Stage][2]float64{ // duration, queue wait
		schemas.StagePreprocess: {20, 10}, schemas.StageInference: {100, 5}, schemas.StagePostprocess: {20, 5}, schemas.StageStore: {9, 1},
	}
	for _, st := range p.Stages {
		if w := want[st.Stage]; st.Duration.P50 != w[0] || st.QueueWait.P50 != w[1] {
			t.Errorf("%s: duration %v wait %v, want %v", st.Stage, st.Duration.P50, st.QueueWait.P50, w)
		}
	}
	if p.QueueWaitTotal.P50 != 21 || p.BatchSizes["2"] != 1 || p.EndToEnd.P50 != 200 || p.ServerEndToEnd.P50 != 170 {
		t.Errorf("total wait %v, batches %v, e2e %v, server e2e %v", p.QueueWaitTotal.P50, p.BatchSizes, p.EndToEnd.P50, p.ServerEndToEnd.P50)
	}
}

func TestIdentityModelIsAValidManifest(t *testing.T) {
	dir := t.TempDir()
	if err := WriteIdentityModel(dir); err != nil {
		t.Fatal(err)
	}
	ms, err := models.LoadManifests(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID() != IdentityModel+"@"+IdentityVersion || ms[0].Task != schemas.TaskStyleTransfer || ms[0].Tile.Size != 0 {
		t.Fatalf("manifests: %+v", ms)
	}
	if _, err := models.Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, ms[0]); err != nil {
		t.Fatalf("the manifest's digest does not match the file: %v", err)
	}
}

// TestIdentityBenchRuns runs the whole bench (pipeline in-process, raw baseline) on a
// few identity jobs. It checks that every job completes without a cache hit; it does
// not judge the figures.
func TestIdentityBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the ONNX Runtime library (studio fetch runtime)")
	}
	var cfg Config
	fs := newFlagSet()
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--task", "identity", "--jobs", "12", "--concurrency", "3", "--warmup", "1", "--device", "cpu", "--json", t.TempDir() + "/report.json"}); err != nil {
		t.Fatal(err)
	}
	cfg.Parsed(fs)
	log := logrus.New()
	log.SetOutput(io.Discard)
	rep, err := Run(context.Background(), &cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Pipeline
	if p.Succeeded != 12 || p.Failed+p.SubmitErrors+p.WaitErrors != 0 || p.CacheHits != 0 {
		t.Fatalf("pipeline: %+v", p)
	}
	if rep.Raw == nil || rep.Raw.Runs != 12 || rep.Ratio <= 0 {
		t.Fatalf("raw baseline: %+v, ratio %v", rep.Raw, rep.Ratio)
	}
	if c := p.CPU; c == nil || c.SelfCPUSeconds <= 0 || c.PerJobCPUSeconds <= 0 || rep.Raw.CPU == nil || rep.Raw.CPU.SelfCPUSeconds <= 0 {
		t.Errorf("cpu: pipeline %+v, raw %+v", p.CPU, rep.Raw.CPU)
	}
	if rep.Memory.PeakRSS <= 0 || rep.Memory.VmHWM < rep.Memory.PeakRSS/2 {
		t.Errorf("memory: %+v", rep.Memory)
	}
	for _, st := range p.Stages {
		if st.Duration.N != 12 {
			t.Errorf("%s: %d timings, want 12", st.Stage, st.Duration.N)
		}
	}
	var out bytes.Buffer
	if err := rep.Print(&out); err != nil || !bytes.Contains(out.Bytes(), []byte("pipeline / raw")) {
		t.Errorf("Print: %v\n%s", err, out.String())
	}
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("studio bench", flag.ContinueOnError) }

// TestNATSSubmitterSpeaksTheNATSEntry submits through ingest's NATS entry (the request
// an upstream system sends on studio.submit.<task>): a small image inline, a large one
// uploaded under uploads/<tenant>/ and sent by key.
func TestNATSSubmitterSpeaksTheNATSEntry(t *testing.T) {
	s := streamstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	if err := WriteIdentityModel(dir); err != nil {
		t.Fatal(err)
	}
	ms, err := models.LoadManifests(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	cat := models.NewCatalog()
	if err := cat.Add(models.Spec{Manifest: ms[0]}); err != nil {
		t.Fatal(err)
	}
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	svc, err := app.NewIngest(ctx, &app.Config{}, app.Deps{Bus: &app.Bus{NC: s.NC, JS: s.JS}, Blobs: blobs, Catalog: cat, Log: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.ServeNATS(ctx, streams.RequestServer{NC: s.NC}) }()
	streamstest.Eventually(t, 10*time.Second, func() bool {
		_, err := s.NC.Request("$SRV.PING", nil, 200*time.Millisecond)
		return err == nil
	}, "the NATS entry did not start")
	jobStore, err := jobs.Open(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	sub := &natsSubmitter{nc: s.NC, blobs: blobs, task: schemas.TaskStyleTransfer, model: IdentityModel, version: IdentityVersion, runID: "test"}
	noise := image.NewNRGBA(image.Rect(0, 0, 500, 500))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.Uint32())
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	for _, tc := range []struct {
		name string
		img  *image.NRGBA
	}{{"a small image travels inline", testImage()}, {"a large image is uploaded and sent by key", noise}} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Variant(Input{Name: "x.png", Pixels: tc.img}, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if large := len(data) > schemas.MaxInlineImageBytes; large != (tc.img == noise) {
				t.Fatalf("%d bytes: the case does not test what it says", len(data))
			}
			id, _, err := sub.Submit(ctx, "x.png", data)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := jobStore.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Model != IdentityModel || rec.Task != schemas.TaskStyleTransfer {
				t.Errorf("record: %+v", rec)
			}
		})
	}
}
