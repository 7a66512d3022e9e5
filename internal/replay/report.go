package replay

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// NewResult is the report row of one replayed request: the original (req) against its
// shadow run (shadow, nil when it never ran), with each run's results by name (the
// bytes of their objects). A shadow run that did not succeed, or outputs that could
// not be compared, give a failed row that says why.
func NewResult(replayID string, req Request, shadow *schemas.JobRecord, original, shadowOut map[string][]byte, now time.Time) schemas.ReplayResult {
	orig := req.Original
	r := schemas.ReplayResult{
		Schema: schemas.SchemaReplayResult, ReplayID: replayID, JobID: orig.ID, Tenant: orig.Tenant, User: orig.User,
		Task: orig.Task, Model: orig.Model, OriginalVersion: orig.ModelVersion, Outcome: schemas.ReplayFailed,
		OriginalMS: processingMS(orig), SubmittedAt: orig.SubmittedAt, ReplayedAt: now.UTC(),
	}
	switch {
	case shadow == nil:
		r.Error = "the shadow run was not queued"
		return r
	case shadow.Status != schemas.StatusSucceeded:
		r.ShadowJobID, r.ShadowVersion = shadow.ID, shadow.ModelVersion
		r.Error = "the shadow run ended " + string(shadow.Status)
		if shadow.Error != nil {
			r.Error += ": " + shadow.Error.Code
		}
		return r
	}
	r.ShadowJobID, r.ShadowVersion, r.ShadowMS = shadow.ID, shadow.ModelVersion, processingMS(shadow)
	m, err := Compare(orig.Task, original, shadowOut)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Outcome, r.Output = schemas.ReplayCompared, m.Output
	r.IoU, r.PSNR, r.SSIM, r.TextEqual, r.CER = m.IoU, m.PSNR, m.SSIM, m.TextEqual, m.CER
	return r
}

// processingMS is a job's time from its first stage's start to its end: what the
// model version costs, without the wait in the queue (which differs by lane).
func processingMS(rec *schemas.JobRecord) float64 {
	start := rec.StartedAt
	if start.IsZero() || rec.FinishedAt.Before(start) {
		return 0
	}
	return float64(rec.FinishedAt.Sub(start).Microseconds()) / 1000
}

// Summary aggregates a replay's rows for one task and version pair.
type Summary struct {
	Task                       schemas.Task
	Model, Original, Shadow    string
	Requests, Compared, Failed int
	MeanIoU, MinIoU            float64 // NaN when no row has the metric
	MeanPSNR, MeanSSIM         float64
	TextEqualShare, MeanCER    float64
	OriginalP50MS, ShadowP50MS float64
	LatencyRatio               float64 // ShadowP50MS / OriginalP50MS
}

// Summarize groups rows by task, model and versions, in that order.
func Summarize(rows []schemas.ReplayResult) []Summary {
	type key struct {
		task                    schemas.Task
		model, original, shadow string
	}
	groups := map[key][]schemas.ReplayResult{}
	for _, r := range rows {
		k := key{r.Task, r.Model, r.OriginalVersion, r.ShadowVersion}
		groups[k] = append(groups[k], r)
	}
	var out []Summary
	for k, rs := range groups {
		s := Summary{Task: k.task, Model: k.model, Original: k.original, Shadow: k.shadow, Requests: len(rs)}
		var iou, psnr, ssim, cer, eq, origMS, shadowMS []float64
		s.MinIoU = math.NaN()
		for _, r := range rs {
			if r.Outcome != schemas.ReplayCompared {
				s.Failed++
				continue
			}
			s.Compared++
			origMS, shadowMS = append(origMS, r.OriginalMS), append(shadowMS, r.ShadowMS)
			if r.IoU != nil {
				iou = append(iou, *r.IoU)
				if math.IsNaN(s.MinIoU) || *r.IoU < s.MinIoU {
					s.MinIoU = *r.IoU
				}
			}
			if r.PSNR != nil {
				psnr = append(psnr, *r.PSNR)
			}
			if r.SSIM != nil {
				ssim = append(ssim, *r.SSIM)
			}
			if r.CER != nil {
				cer = append(cer, *r.CER)
			}
			if r.TextEqual != nil {
				eq = append(eq, map[bool]float64{true: 1, false: 0}[*r.TextEqual])
			}
		}
		s.MeanIoU, s.MeanPSNR, s.MeanSSIM, s.MeanCER, s.TextEqualShare = mean(iou), mean(psnr), mean(ssim), mean(cer), mean(eq)
		s.OriginalP50MS, s.ShadowP50MS = median(origMS), median(shadowMS)
		s.LatencyRatio = math.NaN()
		if s.OriginalP50MS > 0 {
			s.LatencyRatio = s.ShadowP50MS / s.OriginalP50MS
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Task != b.Task {
			return a.Task < b.Task
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Original != b.Original {
			return a.Original < b.Original
		}
		return a.Shadow < b.Shadow
	})
	return out
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable writes the summaries as an aligned terminal table; a metric that does not
// apply is "-".
func WriteTable(w io.Writer, sums []Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tMODEL\tORIGINAL\tSHADOW\tREQUESTS\tCOMPARED\tFAILED\tIOU (MEAN/MIN)\tPSNR dB\tSSIM\tTEXT EQUAL\tCER\tP50 ms (ORIG/SHADOW)\tLATENCY")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Task, s.Model, s.Original, s.Shadow, s.Requests, s.Compared, s.Failed,
			pair(s.MeanIoU, s.MinIoU, 4), num(s.MeanPSNR, 2), num(s.MeanSSIM, 4), pct(s.TextEqualShare), num(s.MeanCER, 4),
			pair(s.OriginalP50MS, s.ShadowP50MS, 1), ratio(s.LatencyRatio))
	}
	return tw.Flush()
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func pair(a, b float64, prec int) string {
	if math.IsNaN(a) && math.IsNaN(b) {
		return "-"
	}
	return num(a, prec) + "/" + num(b, prec)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "x"
}
