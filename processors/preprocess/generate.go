package preprocess

import (
	"context"
	"fmt"
	"sync"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// tokenizers caches one CLIP tokenizer per export directory (they are read-only and
// safe for concurrent use).
var tokenizers sync.Map // export dir -> *diffusion.Tokenizer

func tokenizer(dir string) (*diffusion.Tokenizer, error) {
	if t, ok := tokenizers.Load(dir); ok {
		return t.(*diffusion.Tokenizer), nil
	}
	t, err := diffusion.LoadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	actual, _ := tokenizers.LoadOrStore(dir, t)
	return actual.(*diffusion.Tokenizer), nil
}

// generate is preprocessing for text to image: it resolves the job's settings against
// the model's defaults and bounds and writes the token ids of the negative prompt and
// the prompt as a [2, 77] tensor ("tokens"; ids are exact in float32). There is no
// input image.
func (s *Step) generate(ctx context.Context, ev *schemas.JobEvent, spec models.Spec) error {
	g, err := spec.Generation(ev.Params)
	if err != nil {
		return processors.Permanent(schemas.StagePreprocess, processors.CodeInvalidParams, "%v", err)
	}
	if ev.Params == nil {
		ev.Params = map[string]any{}
	}
	if _, ok := ev.Params["seed"]; !ok {
		ev.Params["seed"] = float64(g.Seed) // the drawn seed travels on, so inference uses it
	}
	tok, err := tokenizer(spec.Path)
	if err != nil {
		return processors.Permanent(schemas.StagePreprocess, processors.CodeModelUnavailable, "model %s: %v", spec.ID(), err)
	}
	ids := append(tok.Encode(g.NegativePrompt), tok.Encode(g.Prompt)...)
	t := artifact.Tensor{Shape: []int64{2, diffusion.ContextLength}, Data: make([]float32, len(ids))}
	for i, id := range ids {
		t.Data[i] = float32(id)
	}
	ref, err := artifact.PutTensor(ctx, s.Blobs, "work/"+ev.JobID+"/tokens.f32", t)
	if err != nil {
		return fmt.Errorf("store tokens: %w", err)
	}
	if ev.Artifacts == nil {
		ev.Artifacts = map[string]schemas.ObjectRef{}
	}
	ev.Artifacts["tokens"] = ref
	return nil
}
