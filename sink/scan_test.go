package sink

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/creativeai-studio/studio/schemas"
)

// referenceTelemetryBatch is decodeTelemetryBatch as it was before the scanner: the
// whole message through json.Unmarshal. The scanner must agree with it.
var referenceTelemetryBatch = unmarshalTelemetryBatch

// sameRows reports how two decodings of one message differ ("" when they agree).
func sameRows(got, want decoded, gotErr, wantErr error) string {
	if (gotErr == nil) != (wantErr == nil) {
		return fmt.Sprintf("error %v, the reference's %v", gotErr, wantErr)
	}
	if gotErr != nil {
		return ""
	}
	if len(got.blocks) != len(want.blocks) {
		return fmt.Sprintf("%d blocks, the reference %d", len(got.blocks), len(want.blocks))
	}
	for i, g := range got.blocks {
		w := want.blocks[i]
		if g.t != w.t || g.rows() != w.rows() {
			return fmt.Sprintf("block %d: %s with %d rows, the reference %s with %d", i, g.t.name, g.rows(), w.t.name, w.rows())
		}
		for r := range g.meta {
			gm, wm := g.meta[r], w.meta[r]
			if gm.key != wm.key || gm.tenant != wm.tenant || gm.user != wm.user || gm.keep != wm.keep || !gm.at.Equal(wm.at) {
				return fmt.Sprintf("block %d row %d: %+v, the reference %+v", i, r, gm, wm)
			}
		}
		for j := range g.t.cols {
			if !reflect.DeepEqual(nonNil(g.str[j]), nonNil(w.str[j])) || !reflect.DeepEqual(nonNil(g.num[j]), nonNil(w.num[j])) ||
				fmt.Sprint(g.flt[j]) != fmt.Sprint(w.flt[j]) {
				return fmt.Sprintf("block %d column %s: %v%v%v, the reference %v%v%v", i, g.t.cols[j].name, g.str[j], g.num[j], g.flt[j], w.str[j], w.num[j], w.flt[j])
			}
		}
	}
	return ""
}

func nonNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func sampleRun(i int) schemas.StageRun {
	return schemas.StageRun{
		Schema: schemas.SchemaStageRun, JobID: fmt.Sprintf("01JF8Y4W3K8Z5Q2N7M6V4T9R%02d", i), Tenant: "acme", User: "user-42",
		Tier: "premium", Task: "remove-background", Model: "isnet", ModelVersion: "small",
		Stage: schemas.StageInference, Worker: "host-1:1234", Attempt: 1 + i%3, BatchSize: 4, Outcome: "ok",
		StartedAt: time.Date(2026, 12, 7, 18, 0, i%60, 123456789, time.UTC), DurationMS: 123.456, QueueWaitMS: 7.5,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// telemetryBatchCases are messages the scanner must read as json.Unmarshal does, or
// refuse as it does.
func telemetryBatchCases(t testing.TB) map[string]string {
	t.Helper()
	marshal := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	batch := func(runs ...schemas.StageRun) string {
		return marshal(schemas.TelemetryBatch{Schema: schemas.SchemaTelemetryBatch, Producer: "w1-01J", Seq: 7, StageRuns: runs})
	}
	odd := sampleRun(1)
	odd.Error = "line 1\nline \"2\"\t\\ é ✓ \u2028 \x01"
	odd.User = "ü/ß"
	odd.TraceParent = ""
	late := sampleRun(2)
	late.StartedAt = time.Date(2026, 2, 28, 23, 59, 59, 0, time.FixedZone("x", -7*3600))
	frac := sampleRun(3)
	frac.StartedAt = time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC)
	old := sampleRun(4)
	old.StartedAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	zero := sampleRun(5)
	zero.StartedAt = time.Time{}
	neg := sampleRun(6)
	neg.DurationMS = -1
	big := sampleRun(7)
	big.Attempt = 70000
	noStage := sampleRun(8)
	noStage.Stage = ""
	pretty, err := json.MarshalIndent(schemas.TelemetryBatch{Schema: schemas.SchemaTelemetryBatch, Producer: "p", Seq: 1,
		StageRuns: []schemas.StageRun{sampleRun(1), sampleRun(2)}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	one := strings.TrimSuffix(strings.TrimPrefix(batch(sampleRun(9)), `{"schema":"studio.telemetry.batch/v1","producer":"w1-01J","seq":7,"stage_runs":[`), "]}")
	return map[string]string{
		"usual":               batch(sampleRun(1), sampleRun(2), sampleRun(3)),
		"escapes and unicode": batch(odd),
		"offset time":         batch(late),
		"microseconds":        batch(frac),
		"before 1970":         batch(old),
		"zero time":           batch(zero),
		"negative duration":   batch(neg),
		"attempt too large":   batch(big),
		"missing stage":       batch(noStage),
		"pretty":              string(pretty),
		"http requests": marshal(schemas.TelemetryBatch{Schema: schemas.SchemaTelemetryBatch, Producer: "p", Seq: 2,
			HTTPRequests: []schemas.HTTPRequest{{Schema: schemas.SchemaHTTPRequest, ID: "r1", Time: time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC),
				Method: "GET", Route: "/v1/jobs/{id}", Status: 200, Tenant: "acme", User: "u", SampleRate: 0.5}}}),
		"no rows":            `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3}`,
		"null rows":          `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":null,"http_requests":null}`,
		"null row":           `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[null]}`,
		"null fields":        `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `"tier":"premium"`, `"tier":null`, 1) + `]}`,
		"unknown fields":     `{"x":{"a":[1,2,{"b":"}"}],"c":true},"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `{`, `{"extra":[null,false,-1.5e3,"]"],`, 1) + `],"y":null}`,
		"upper-case keys":    `{"Schema":"studio.telemetry.batch/v1","PRODUCER":"p","seq":3,"stage_runs":[` + strings.Replace(one, `"job_id"`, `"Job_ID"`, 1) + `]}`,
		"repeated rows key":  `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + one + `],"stage_runs":[]}`,
		"schema last":        `{"producer":"p","seq":3,"stage_runs":[` + one + `],"schema":"studio.telemetry.batch/v1"}`,
		"another schema":     marshal(sampleRun(1)),
		"no producer":        `{"schema":"studio.telemetry.batch/v1","seq":3,"stage_runs":[` + one + `]}`,
		"seq is text":        `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":"3"}`,
		"attempt is text":    `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `"attempt":1`, `"attempt":"1"`, 1) + `]}`,
		"attempt fraction":   `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `"attempt":1`, `"attempt":1.5`, 1) + `]}`,
		"bad time":           `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `2026-12-07T18`, `2026-13-07T18`, 1) + `]}`,
		"february 30":        `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + strings.Replace(one, `2026-12-07T18`, `2026-02-30T18`, 1) + `]}`,
		"truncated":          batch(sampleRun(1))[:200],
		"trailing data":      batch(sampleRun(1)) + `x`,
		"trailing comma":     `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,}`,
		"not an object":      `[1,2]`,
		"empty":              ``,
		"unterminated value": `{"schema":"studio.telemetry.batch/v1","producer":"p","seq":3,"stage_runs":[` + one,
	}
}

func TestScannerReadsTelemetryBatchesAsJSONUnmarshalDoes(t *testing.T) {
	for name, msg := range telemetryBatchCases(t) {
		t.Run(name, func(t *testing.T) {
			got, gotErr := decodeTelemetryBatch([]byte(msg))
			want, wantErr := referenceTelemetryBatch([]byte(msg))
			if diff := sameRows(got, want, gotErr, wantErr); diff != "" {
				t.Fatalf("%s\nmessage: %s", diff, msg)
			}
		})
	}
	// The cases above do exercise both outcomes.
	got, err := decodeTelemetryBatch([]byte(telemetryBatchCases(t)["usual"]))
	if err != nil || len(got.blocks) != 1 || got.blocks[0].rows() != 3 {
		t.Fatalf("the usual batch: %v, %+v", err, got)
	}
	if _, err := decodeTelemetryBatch([]byte(telemetryBatchCases(t)["missing stage"])); err == nil || !strings.Contains(err.Error(), "stage_runs[0]: missing stage") {
		t.Fatalf("a row without a stage: %v", err)
	}
}

func FuzzScannerReadsTelemetryBatchesAsJSONUnmarshalDoes(f *testing.F) {
	for _, msg := range telemetryBatchCases(f) {
		f.Add([]byte(msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, gotErr := decodeTelemetryBatch(msg)
		want, wantErr := referenceTelemetryBatch(msg)
		if diff := sameRows(got, want, gotErr, wantErr); diff != "" {
			t.Fatalf("%s\nmessage: %q", diff, msg)
		}
	})
}

func TestParseUTCAgreesWithTheTimePackage(t *testing.T) {
	for _, s := range []string{
		"2026-12-07T18:00:00Z", "2026-12-07T18:00:00.1Z", "2026-12-07T18:00:00.123456789Z", "2024-02-29T00:00:00Z",
		"2026-12-07T23:59:59.000000001Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseUTC(s)
		if !ok || !got.Equal(want) || got.Location() != want.Location() {
			t.Errorf("parseUTC(%s) = %v, %v; the time package: %v", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"2026-12-07T18:00:00+01:00", "2025-02-29T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T18:00:60Z",
		"2026-12-07 18:00:00Z", "2026-12-07T18:00:00.Z", "2026-12-07T18:00:00.1234567890Z", "2026-1-07T18:00:00Z", "2026-12-07T18:00:00",
	} {
		if got, ok := parseUTC(s); ok {
			t.Errorf("parseUTC(%s) = %v; want it left to the time package", s, got)
		}
	}
}

// TestScannerAgreesOnMutatedBatches checks the scanner against json.Unmarshal on
// corrupted copies of the cases (bytes changed, inserted, cut), a fuzzer's first steps
// without its instrumented build.
func TestScannerAgreesOnMutatedBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2026))
	alphabet := []byte(`{}[]":,\ .-+eE0123456789tnfrualsZT` + "\x00\n\t\xff")
	cases := telemetryBatchCases(t)
	names := slices.Sorted(maps.Keys(cases))
	for i := range 5000 {
		msg := []byte(cases[names[rng.IntN(len(names))]])
		for range 1 + rng.IntN(3) {
			if len(msg) == 0 {
				break
			}
			at := rng.IntN(len(msg))
			switch rng.IntN(3) {
			case 0:
				msg[at] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				msg = slices.Insert(msg, at, alphabet[rng.IntN(len(alphabet))])
			case 2:
				msg = slices.Delete(msg, at, min(at+1+rng.IntN(8), len(msg)))
			}
		}
		got, gotErr := decodeTelemetryBatch(msg)
		want, wantErr := referenceTelemetryBatch(msg)
		if diff := sameRows(got, want, gotErr, wantErr); diff != "" {
			t.Fatalf("mutation %d: %s\nmessage: %q", i, diff, msg)
		}
	}
}
