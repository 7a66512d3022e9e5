package postprocess_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// Two generated images, the second flagged by the safety checker (and so black, as
// inference leaves it): its result says so, the first image and the thumbnail (made
// from the first) do not; with the first flagged, the thumbnail is flagged too.
func TestGeneratedImagesTheSafetyCheckerFlaggedAreMarkedUnsafe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, srv.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	step := &postprocess.Step{Blobs: blobs, Catalog: models.NewCatalog()}
	const w, h = 8, 6
	planes := make([]byte, 2*3*w*h)
	for i := range 3 * w * h {
		planes[i] = byte(i) // image 0 has content; image 1 is black
	}
	out, err := artifact.PutPixels(ctx, blobs, "work/j1/images.u8", artifact.Pixels{Shape: []int64{2, 3, h, w}, Data: planes})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		unsafe []int
		want   map[string]bool
	}{
		{[]int{1}, map[string]bool{"image": false, "image-2": true, "thumbnail": false}},
		{[]int{0, 1}, map[string]bool{"image": true, "image-2": true, "thumbnail": true}},
		{nil, map[string]bool{"image": false, "image-2": false, "thumbnail": false}},
	} {
		ev := &schemas.JobEvent{JobID: "j1", Task: schemas.TaskGenerate, Unsafe: tc.unsafe,
			Artifacts: map[string]schemas.ObjectRef{"output": out}}
		if errs := step.Process(ctx, []*schemas.JobEvent{ev}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		for name, unsafe := range tc.want {
			ref, ok := ev.Artifacts[name]
			if !ok {
				t.Fatalf("unsafe %v: no %s among %v", tc.unsafe, name, ev.Artifacts)
			}
			if got := slices.Contains(ref.Flags, schemas.FlagUnsafe); got != unsafe {
				t.Errorf("unsafe %v: %s has flags %v, want unsafe %v", tc.unsafe, name, ref.Flags, unsafe)
			}
		}
	}
}
