package processors_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

var update = flag.Bool("update", false, "rewrite the README's generated subject table from processors.Stages")

// matches reports whether subject matches a NATS filter ("*" one token, ">" the rest).
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// concrete turns a filter into a subject it matches.
func concrete(filter string) string {
	toks := strings.Split(filter, ".")
	for i, t := range toks {
		if t == "*" || t == ">" {
			toks[i] = "x"
		}
	}
	return strings.Join(toks, ".")
}

// holders returns the streams whose subjects take subject.
func holders(subject string) []string {
	var out []string
	for _, c := range streams.DefaultTopology(1).StreamConfigs(processors.Streams()) {
		for _, s := range c.Subjects {
			if matches(s, subject) {
				out = append(out, c.Name)
				break
			}
		}
	}
	return out
}

// events covers every tier and a few tasks and models.
func events() []*schemas.JobEvent {
	var out []*schemas.JobEvent
	for _, tier := range schemas.Tiers {
		for _, tm := range [][2]string{{string(schemas.TaskRemoveBackground), "isnet"}, {string(schemas.TaskUpscale), "realesrgan"}} {
			out = append(out, &schemas.JobEvent{JobID: "j1", Tenant: "acme", User: "u1", Tier: tier, Task: schemas.Task(tm[0]), Model: tm[1]})
		}
	}
	return out
}

func TestStageTable(t *testing.T) {
	rows := processors.Stages
	t.Run("every row is complete and named once", func(t *testing.T) {
		seen := map[schemas.Stage]bool{}
		streamsSeen := map[string]bool{}
		for _, r := range rows {
			if seen[r.Name] || streamsSeen[r.Stream.Name] {
				t.Errorf("stage %s or stream %s is declared twice", r.Name, r.Stream.Name)
			}
			seen[r.Name], streamsSeen[r.Stream.Name] = true, true
			if r.Durable == "" || r.Filter == nil || r.Next == nil || r.NextSchema == "" || len(r.Stream.Subjects) == 0 {
				t.Errorf("stage %s lacks a durable, filter, next subject, next schema or stream subjects", r.Name)
			}
			if r.AckWait < time.Second || r.MaxDeliver < 1 || r.MaxAckPending < 1 || r.Concurrency < 1 || r.Timeout <= 0 {
				t.Errorf("stage %s: AckWait %s, MaxDeliver %d, MaxAckPending %d, Concurrency %d, Timeout %s: all must be positive",
					r.Name, r.AckWait, r.MaxDeliver, r.MaxAckPending, r.Concurrency, r.Timeout)
			}
		}
	})
	t.Run("progress rises from stage to stage and stays below 100", func(t *testing.T) {
		last := 0
		for _, r := range rows {
			if r.Percent <= last || r.Percent >= 100 {
				t.Errorf("stage %s starts at %d%%, after %d%%", r.Name, r.Percent, last)
			}
			last = r.Percent
			if got := processors.StagePercent(r.Name); got != r.Percent {
				t.Errorf("StagePercent(%s) = %d, want the row's %d", r.Name, got, r.Percent)
			}
		}
	})
	t.Run("every consumer filter and output subject is held by exactly one stream", func(t *testing.T) {
		for _, r := range rows {
			for _, ev := range events() {
				in := concrete(r.Filter(ev.Tier, ev.Model))
				if got := holders(in); !slices.Equal(got, []string{r.Stream.Name}) {
					t.Errorf("%s reads %s, held by %v; want only its stream %s", r.Name, in, got, r.Stream.Name)
				}
				if got := holders(r.Next(ev)); len(got) != 1 {
					t.Errorf("%s writes %s, held by %v; want exactly one stream", r.Name, r.Next(ev), got)
				}
			}
		}
	})
	t.Run("ingest's subject is the first stage's input", func(t *testing.T) {
		for _, ev := range events() {
			if s := schemas.RequestSubject(ev.Tier, ev.Task); !matches(rows[0].Filter(ev.Tier, ev.Model), s) {
				t.Errorf("ingest publishes %s, which %s's %s consumer does not read", s, rows[0].Name, ev.Tier)
			}
		}
	})
	t.Run("each stage's output is the next stage's input, of the same tier only", func(t *testing.T) {
		for i, r := range rows[:len(rows)-1] {
			next := rows[i+1]
			for _, ev := range events() {
				out := r.Next(ev)
				for _, tier := range schemas.Tiers {
					if got, want := matches(next.Filter(tier, ev.Model), out), tier == ev.Tier; got != want {
						t.Errorf("%s writes %s; %s's %s consumer reads it: %v, want %v", r.Name, out, next.Name, tier, got, want)
					}
				}
				if slices.Equal(holders(out), []string{next.Stream.Name}) == false {
					t.Errorf("%s writes %s outside %s's stream %s", r.Name, out, next.Name, next.Stream.Name)
				}
			}
		}
	})
	t.Run("the last stage's output is the tenant's result subject", func(t *testing.T) {
		last := rows[len(rows)-1]
		for _, ev := range events() {
			if got, want := last.Next(ev), schemas.ResultSubject(ev.Tenant, ev.Task); got != want {
				t.Errorf("%s writes %s, want %s", last.Name, got, want)
			}
		}
		if last.NextSchema != schemas.SchemaJobResult {
			t.Errorf("%s emits %s, want %s", last.Name, last.NextSchema, schemas.SchemaJobResult)
		}
	})
	t.Run("a per-model stage runs one consumer group per model and rejects bad names", func(t *testing.T) {
		for _, r := range rows {
			spec, err := r.Consumers("isnet")
			if err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			want := r.Durable
			if r.PerModel {
				want += "-isnet"
				if _, err := r.Consumers("bad.name"); err == nil {
					t.Errorf("%s accepted the model name bad.name", r.Name)
				}
			}
			if spec.Durable != want || spec.Stream != r.Stream.Name || spec.AckWait != r.AckWait ||
				spec.MaxDeliver != r.MaxDeliver || spec.MaxAckPending != r.MaxAckPending {
				t.Errorf("%s consumer spec %+v does not match its row", r.Name, spec)
			}
			for _, tier := range schemas.Tiers {
				if got, want := spec.Filter(tier), r.Filter(tier, map[bool]string{true: "isnet"}[r.PerModel]); got != want {
					t.Errorf("%s %s filter = %s, want %s", r.Name, tier, got, want)
				}
			}
		}
		if _, err := processors.Consumers("ingest", ""); err == nil {
			t.Error("Consumers(ingest) succeeded; ingest is not a stage of the table")
		}
	})
	t.Run("the stream list is the table's, then results, steps, telemetry, audit, feedback and the DLQ", func(t *testing.T) {
		var names []string
		for _, c := range streams.DefaultTopology(1).StreamConfigs(processors.Streams()) {
			names = append(names, c.Name)
		}
		want := []string{}
		for _, r := range rows {
			want = append(want, r.Stream.Name)
		}
		want = append(want, schemas.StreamResults, schemas.StreamSteps, schemas.StreamTelemetry, schemas.StreamAudit, schemas.StreamFeedback, schemas.StreamDLQ)
		if !slices.Equal(names, want) {
			t.Errorf("streams %v, want %v", names, want)
		}
	})
}

const (
	readmeBegin = "<!-- BEGIN generated from processors.Stages: go test ./processors -run TestREADMESubjectTable -update -->"
	readmeEnd   = "<!-- END generated -->"
)

// subjectTable renders the README's subject and stage tables from the stage table.
func subjectTable() string {
	topo := streams.DefaultTopology(1)
	cfgs := topo.StreamConfigs(processors.Streams())
	stream := func(names ...string) string {
		var ret string
		for _, c := range cfgs {
			if c.Name != names[len(names)-1] {
				continue
			}
			ret = "work queue"
			if c.Retention != jetstream.WorkQueuePolicy {
				ret = fmt.Sprintf("limits, %d d", int(c.MaxAge.Hours()/24))
			}
		}
		return fmt.Sprintf("%s (%s)", strings.Join(names, ", "), ret)
	}
	ev := &schemas.JobEvent{Tier: "<tier>", Task: "<task>", Model: "<model>", Tenant: "<tenant>"}
	rows := processors.Stages
	var b bytes.Buffer
	line := func(cells ...string) { fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | ")) }
	b.WriteString(readmeBegin + "\n")
	line("subject", "stream (retention)", "schema", "published by")
	line("---", "---", "---", "---")
	line("`"+schemas.RequestSubject(ev.Tier, ev.Task)+"`", stream(rows[0].Stream.Name),
		"`"+schemas.SchemaJobRequested+"` (`schemas.JobEvent`)", "ingest")
	for i, r := range rows[1:] {
		prev := rows[i]
		line("`"+prev.Next(ev)+"`", stream(r.Stream.Name), "`"+prev.NextSchema+"`", string(prev.Name))
	}
	last := rows[len(rows)-1]
	line("`"+last.Next(ev)+"`", stream(schemas.StreamResults), "`"+last.NextSchema+"` (`schemas.ResultEvent`)",
		string(last.Name)+" (success), any stage (failure)")
	line("`"+schemas.StepSubject("<tenant>", "<task>")+"`", stream(schemas.StreamSteps), "`"+schemas.SchemaJobStep+"` (`schemas.StepEvent`)",
		string(last.Name)+", for each finished step of a chained job (see [Chained steps](#chained-steps))")
	line("`"+schemas.SubjectTelemetryBatch+"`", stream(schemas.StreamTelemetry),
		"`"+schemas.SchemaTelemetryBatch+"` (`schemas.TelemetryBatch`: many `"+schemas.SchemaStageRun+"` rows)",
		"every stage, its runs batched (`--telemetry-batch-rows`, `--telemetry-batch-wait`)")
	line("`"+schemas.TelemetrySubject("<stage>")+"`", stream(schemas.StreamTelemetry),
		"`"+schemas.SchemaStageRun+"` (`schemas.StageRun`)", "every stage, per attempt, with `--telemetry-batch-rows 0` (and older versions)")
	line("`"+schemas.DLQSubject("<stage>")+"`", stream(schemas.StreamDLQ), "the original message, plus headers", "the stage runner")
	line("`studio.audit.<action>`, `studio.feedback`", stream(schemas.StreamAudit, schemas.StreamFeedback), "see `schemas/`", "ingest")
	b.WriteString("\nEach stage, as `processors.Stages` declares it (`--ack-wait`, `--concurrency` and\n`--stage-deadline` override the defaults for every stage; the timeout bounds a batch and is\nretried, the deadline bounds one image and fails its job with `stage_deadline_exceeded`):\n\n")
	line("stage", "consumes", "consumer group (per tier)", "AckWait", "MaxDeliver", "MaxAckPending", "concurrency", "timeout", "deadline", "progress")
	line("---", "---", "---", "---", "---", "---", "---", "---", "---", "---")
	for _, r := range rows {
		group := r.Durable + "-<tier>"
		if r.PerModel {
			group = r.Durable + "-<model>-<tier>"
		}
		line(string(r.Name), "`"+r.Filter("<tier>", "<model>")+"`", "`"+group+"`", r.AckWait.String(),
			fmt.Sprint(r.MaxDeliver), fmt.Sprint(r.MaxAckPending), fmt.Sprint(r.Concurrency), r.Timeout.String(), r.Deadline.String(), fmt.Sprintf("%d%%", r.Percent))
	}
	b.WriteString(readmeEnd)
	return b.String()
}

func TestREADMESubjectTable(t *testing.T) {
	const path = "../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, readmeBegin), strings.Index(doc, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no generated subject table between %q and %q", readmeBegin, readmeEnd)
	}
	got, want := doc[i:j+len(readmeEnd)], subjectTable()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(readmeEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's subject table differs from processors.Stages; run `go test ./processors -run TestREADMESubjectTable -update`.\ngot:\n%s\nwant:\n%s", got, want)
}
