package diffusion_test

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

// The test vocabulary (diffusiontest.Vocab) gives byte b the id b, byte b with "</w>"
// the id 256+b, then one id per merge in the order of diffusiontest.Words: "ph" 512,
// "pho" 513, "phot" 514, "photo</w>" 515, "of</w>" 516, "ca" 517, "cat</w>" 518, "do"
// 519, "dog</w>" 520, "re" 521, "red</w>" 522, "bl" 523 ... "blurry</w>" 527, then
// <|startoftext|> 528 and <|endoftext|> 529. The expected ids below are worked out by
// hand from that table and CLIP's rules.
func testTokenizer(t *testing.T, pad string) *diffusion.Tokenizer {
	t.Helper()
	vocab, merges := diffusiontest.Vocab()
	vj, _ := json.Marshal(vocab)
	tok, err := diffusion.NewTokenizer(bytes.NewReader(vj), strings.NewReader("#version: 0.2\n"+strings.Join(merges, "\n")+"\n"), pad)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNormalize(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"case is folded and whitespace runs collapse", "  A   Photo\tOF\nCats ", "a photo of cats"},
		{"HTML entities are unescaped, twice as the reference does", "cats &amp;amp; dogs &lt;3", "cats & dogs <3"},
		{"non-ASCII letters are lower-cased too", "ÉCOLE Straße", "école straße"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := diffusion.Normalize(c.in); got != c.want {
				t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestPreTokenize(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"contractions split off", "it's what we'll do", []string{"it", "'s", "what", "we", "'ll", "do"}},
		{"digits stand alone", "in 2024", []string{"in", "2", "0", "2", "4"}},
		{"punctuation runs stay together", "wow!!, ok", []string{"wow", "!!,", "ok"}},
		{"special tokens are kept whole", "a<|endoftext|>b", []string{"a", "<|endoftext|>", "b"}},
		{"letters of any script form words", "café über", []string{"café", "über"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := diffusion.PreTokenize(c.in); !slices.Equal(got, c.want) {
				t.Errorf("PreTokenize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	const bos, eos = 528, 529
	pad := func(ids []int32, with int32) []int32 {
		for len(ids) < diffusion.ContextLength {
			ids = append(ids, with)
		}
		return ids
	}
	cases := []struct {
		name   string
		pad    string
		prompt string
		want   []int32
	}{
		{"whole words merge to their word tokens", "", "a photo of a red cat", pad([]int32{bos, 256 + 'a', 515, 516, 256 + 'a', 522, 518, eos}, eos)},
		{"case and spacing do not matter", "", "  A PHOTO   of a Red CAT", pad([]int32{bos, 256 + 'a', 515, 516, 256 + 'a', 522, 518, eos}, eos)},
		{"a word without a full merge keeps its partial merges and </w> on its last symbol", "", "cats", pad([]int32{bos, 517, 't', 256 + 's', eos}, eos)},
		{"non-ASCII text is split into its UTF-8 bytes", "", "café", pad([]int32{bos, 517, 'f', 0xC3, 256 + 0xA9, eos}, eos)},
		{"the empty prompt is bos and eos", "", "", pad([]int32{bos, eos}, eos)},
		{"SD 2.x / Turbo exports pad with '!'", "!", "dog", pad([]int32{bos, 520, eos}, '!')},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := testTokenizer(t, c.pad).Encode(c.prompt)
			if !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q) =\n%v\nwant\n%v", c.prompt, got, c.want)
			}
		})
	}
	t.Run("long prompts are truncated to 75 tokens between bos and eos", func(t *testing.T) {
		got := testTokenizer(t, "").Encode(strings.Repeat("cat ", 100))
		if len(got) != diffusion.ContextLength || got[0] != bos || got[76] != eos {
			t.Fatalf("len %d, first %d, last %d", len(got), got[0], got[len(got)-1])
		}
		for i, id := range got[1:76] {
			if id != 518 {
				t.Fatalf("id %d is %d, want 518 (cat</w>)", i+1, id)
			}
		}
	})
	t.Run("a vocabulary without CLIP's special tokens is refused", func(t *testing.T) {
		_, err := diffusion.NewTokenizer(strings.NewReader(`{"a</w>": 0}`), strings.NewReader("#version: 0.2\n"), "")
		if err == nil || !strings.Contains(err.Error(), "<|startoftext|>") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestNoiseMatchesNumpy checks the generator against published reference values: the
// MT19937 reference output for init_genrand(5489) and numpy's
// RandomState(0).randn(6).
func TestNoiseMatchesNumpy(t *testing.T) {
	if got := diffusion.NewNoise(5489).Uint32(); got != 3499211612 {
		t.Errorf("MT19937(5489) first output %d, want 3499211612", got)
	}
	if got := diffusion.NewNoise(0).Uint32(); got != 2357136044 {
		t.Errorf("MT19937(0) first output %d, want 2357136044", got)
	}
	want := []float64{1.764052345967664, 0.4001572083672233, 0.9787379841057392, 2.240893199201458, 1.8675579901499675, -0.977277879876411}
	n := diffusion.NewNoise(0)
	for i, w := range want {
		if got := n.Norm(); math.Abs(got-w) > 1e-12 {
			t.Errorf("randn[%d] = %.16f, want %.16f", i, got, w)
		}
	}
}

// sdConfig is Stable Diffusion 1.5's scheduler config (beta 0.00085..0.012, scaled
// linear, steps_offset 1).
func sdConfig(t *testing.T, class, spacing, prediction string) diffusion.SchedulerConfig {
	t.Helper()
	c, err := diffusion.ReadSchedulerConfig(strings.NewReader(`{"_class_name":"` + class + `","num_train_timesteps":1000,"beta_start":0.00085,"beta_end":0.012,"beta_schedule":"scaled_linear","prediction_type":"` + prediction + `","timestep_spacing":"` + spacing + `","steps_offset":1,"set_alpha_to_one":false}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5*max(1, math.Abs(b)) }

// The expected numbers come from diffusers' formulas worked through by hand (in float64):
// alphabar = cumprod(1 - beta), sigma = sqrt((1 - alphabar) / alphabar); SD's familiar
// sigma range 14.6146 .. 0.0292 is one check of them. The initial noise sigma is the
// largest sigma the run visits, and sqrt(sigma^2 + 1) of it for leading spacing.
func TestSchedulers(t *testing.T) {
	cases := []struct {
		name       string
		class      string
		spacing    string
		prediction string
		steps      int
		timesteps  []float64
		initSigma  float64
		inputScale float64 // at step 0
		step0      float64 // x = 1, prediction 0.5, first step, before noise
		noiseScale float64 // sigma_up of the first step (ancestral)
	}{
		{"euler ancestral, leading spacing", "EulerAncestralDiscreteScheduler", "leading", "epsilon", 4, []float64{751, 501, 251, 1},
			math.Sqrt(4.116696479276066*4.116696479276066 + 1), 1 / math.Sqrt(4.116696479276066*4.116696479276066+1), -0.738142950172421, 1.4920624202660862},
		{"euler, leading spacing", "EulerDiscreteScheduler", "leading", "epsilon", 4, []float64{751, 501, 251, 1},
			math.Sqrt(4.116696479276066*4.116696479276066 + 1), 1 / math.Sqrt(4.116696479276066*4.116696479276066+1), -0.2465021988801015, 0},
		{"turbo: one euler step, trailing spacing, lands on the prediction of x0", "EulerDiscreteScheduler", "trailing", "epsilon", 1, []float64{999},
			14.614641229333643, 1 / math.Sqrt(14.614641229333643*14.614641229333643+1), 1 - 14.614641229333643*0.5, 0},
		{"euler ancestral, one step: no noise is added at sigma 0", "EulerAncestralDiscreteScheduler", "trailing", "epsilon", 1, []float64{999},
			14.614641229333643, 1 / math.Sqrt(14.614641229333643*14.614641229333643+1), 1 - 14.614641229333643*0.5, 0},
		{"ddim, leading spacing", "DDIMScheduler", "leading", "epsilon", 4, []float64{751, 501, 251, 1}, 1, 1, 1.5679194694375649, 0},
		{"ddim, v-prediction", "DDIMScheduler", "leading", "v_prediction", 4, []float64{751, 501, 251, 1}, 1, 1, 0.7968951246690056, 0},
		{"ddim, linspace spacing rounds to whole timesteps", "DDIMScheduler", "linspace", "epsilon", 3, []float64{999, 500, 0}, 1, 1, math.NaN(), 0},
		{"euler, linspace spacing interpolates sigma at 499.5", "EulerDiscreteScheduler", "linspace", "epsilon", 3, []float64{999, 499.5, 0}, 14.614641229333643, math.NaN(), math.NaN(), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := sdConfig(t, c.class, c.spacing, c.prediction)
			kind, err := cfg.Kind("")
			if err != nil {
				t.Fatal(err)
			}
			s, err := diffusion.NewScheduler(cfg, kind, c.steps)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Timesteps(); !slices.Equal(got, c.timesteps) {
				t.Errorf("timesteps %v, want %v", got, c.timesteps)
			}
			if got := s.InitNoiseSigma(); !near(got, c.initSigma) {
				t.Errorf("init noise sigma %v, want %v", got, c.initSigma)
			}
			if !math.IsNaN(c.inputScale) {
				if got := s.InputScale(0); !near(got, c.inputScale) {
					t.Errorf("input scale %v, want %v", got, c.inputScale)
				}
			}
			if math.IsNaN(c.step0) {
				return
			}
			x := []float32{1}
			noise := diffusion.NewNoise(0) // first draw 1.764052345967664
			s.Step(0, []float32{0.5}, x, noise)
			want := c.step0 + c.noiseScale*1.764052345967664
			if !near(float64(x[0]), want) || math.Abs(float64(x[0])-want) > 1e-4 {
				t.Errorf("first step: x = %v, want %v", x[0], want)
			}
		})
	}
	t.Run("ddim's last step uses alphabar[0] when set_alpha_to_one is false", func(t *testing.T) {
		s, _ := diffusion.NewScheduler(sdConfig(t, "DDIMScheduler", "leading", "epsilon"), diffusion.DDIM, 4)
		x := []float32{1}
		s.Step(3, []float32{0.5}, x, nil)
		if !near(float64(x[0]), 0.9943565783818035) {
			t.Errorf("x = %v, want 0.9943565783818035", x[0])
		}
	})
	t.Run("euler's interpolated sigma at 499.5 lies halfway", func(t *testing.T) {
		s, _ := diffusion.NewScheduler(sdConfig(t, "EulerDiscreteScheduler", "linspace", "epsilon"), diffusion.Euler, 3)
		want := 1 / math.Sqrt(1.6155825101612464*1.6155825101612464+1)
		if got := s.InputScale(1); !near(got, want) {
			t.Errorf("input scale %v, want %v", got, want)
		}
	})
	t.Run("an unimplemented scheduler class names the override", func(t *testing.T) {
		_, err := sdConfig(t, "PNDMScheduler", "leading", "epsilon").Kind("")
		if err == nil || !strings.Contains(err.Error(), "diffusion.scheduler") {
			t.Errorf("err = %v", err)
		}
		if k, err := sdConfig(t, "PNDMScheduler", "leading", "epsilon").Kind("ddim"); err != nil || k != diffusion.DDIM {
			t.Errorf("override: %q, %v", k, err)
		}
	})
	t.Run("more steps than training timesteps are refused", func(t *testing.T) {
		if _, err := diffusion.NewScheduler(sdConfig(t, "DDIMScheduler", "leading", "epsilon"), diffusion.DDIM, 1001); err == nil {
			t.Error("1001 steps accepted")
		}
	})
}
