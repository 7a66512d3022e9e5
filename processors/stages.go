package processors

import (
	"fmt"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Stage declares one pipeline stage: the stream it consumes, its consumer groups, where
// its output goes, and how its runner is sized. Topology (Streams), consumers
// (Consumers), the handler's routing and progress, the wiring in internal/app and the
// README's subject table all read Stages; a row is never modified after init.
type Stage struct {
	Name schemas.Stage
	// Stream is the stream the stage consumes. Each pipeline stream belongs to exactly
	// one row; the stage before it (or ingest, for the first) publishes into it.
	Stream streams.StreamSpec
	// Durable names the consumer group; the tier is appended ("preprocess-premium").
	// PerModel rows run one group per model name ("inference-isnet-premium").
	Durable  string
	PerModel bool
	// Filter is the subject one tier consumer reads; model is "" unless PerModel.
	Filter func(t schemas.Tier, model string) string
	// Next is the subject of the event the stage emits for ev, and NextSchema its schema.
	Next       func(ev *schemas.JobEvent) string
	NextSchema string
	// AckWait should exceed the stage's p99 processing time; the runner also sends
	// InProgress while it holds a message.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries; the last failure goes to the DLQ.
	MaxDeliver int
	// MaxAckPending bounds the messages one consumer group holds unacknowledged.
	MaxAckPending int
	// Concurrency is how many batches one runner handles at once unless configured.
	Concurrency int
	// Timeout bounds the handling of one batch; past it the work is cancelled and retried.
	Timeout time.Duration
	// Deadline bounds one message's run of the Step on one delivery (a batch of n gets
	// n × Deadline): past it the run's context ends (decoders stop within a chunk, see
	// imageio.DecodeContext) and the job fails with CodeStageDeadline instead of being
	// retried, so an input that is slow to process holds a worker once, for Deadline, not
	// MaxDeliver × Timeout. It is shorter than Timeout, which stays the transient bound.
	Deadline time.Duration
	// Percent is the job's progress when the stage begins.
	Percent int
}

// Stages is the pipeline, in order: every stage is declared here once. Adding a stage is
// one row plus its Step (and its constructor in internal/app).
var Stages = []Stage{
	{
		Name: schemas.StagePreprocess,
		Stream: streams.StreamSpec{
			Name: schemas.StreamRequests, Description: "job requests from ingest; replayable log",
			Subjects: []string{schemas.RootRequests + ".>"},
		},
		Durable:       "preprocess",
		Filter:        func(t schemas.Tier, _ string) string { return schemas.TierSubjects(schemas.RootRequests, t) },
		Next:          func(ev *schemas.JobEvent) string { return schemas.PreprocessedSubject(ev.Tier, ev.Model) },
		NextSchema:    schemas.SchemaJobPreprocessed,
		AckWait:       30 * time.Second,
		MaxDeliver:    5,
		MaxAckPending: 64,
		Concurrency:   2,
		Timeout:       2 * time.Minute,
		Deadline:      time.Minute,
		Percent:       10,
	},
	{
		Name: schemas.StageInference,
		Stream: streams.StreamSpec{
			Name: schemas.StreamPreprocessed, Description: "model-ready inputs awaiting inference",
			Subjects: []string{schemas.RootPreprocessed + ".>"}, WorkQueue: true,
		},
		Durable:    "inference",
		PerModel:   true,
		Filter:     func(t schemas.Tier, model string) string { return schemas.PreprocessedSubject(t, model) },
		Next:       func(ev *schemas.JobEvent) string { return schemas.InferredSubject(ev.Tier, ev.Task) },
		NextSchema: schemas.SchemaJobInferred,
		// One IS-Net run takes 4-6 s on one CPU core, and a batch holds several.
		AckWait:       2 * time.Minute,
		MaxDeliver:    5,
		MaxAckPending: 16,
		Concurrency:   2,
		Timeout:       10 * time.Minute,
		Deadline:      5 * time.Minute,
		Percent:       25,
	},
	{
		Name: schemas.StagePostprocess,
		Stream: streams.StreamSpec{
			Name: schemas.StreamInferred, Description: "model outputs awaiting postprocessing",
			Subjects: []string{schemas.RootInferred + ".>"}, WorkQueue: true,
		},
		Durable:       "postprocess",
		Filter:        func(t schemas.Tier, _ string) string { return schemas.TierSubjects(schemas.RootInferred, t) },
		Next:          func(ev *schemas.JobEvent) string { return schemas.PostprocessedSubject(ev.Tier, ev.Task) },
		NextSchema:    schemas.SchemaJobPostprocessed,
		AckWait:       30 * time.Second,
		MaxDeliver:    5,
		MaxAckPending: 64,
		Concurrency:   2,
		Timeout:       2 * time.Minute,
		Deadline:      time.Minute,
		Percent:       80,
	},
	{
		Name: schemas.StageStore,
		Stream: streams.StreamSpec{
			Name: schemas.StreamPostprocessed, Description: "encoded results awaiting storage",
			Subjects: []string{schemas.RootPostprocessed + ".>"}, WorkQueue: true,
		},
		Durable:       "store",
		Filter:        func(t schemas.Tier, _ string) string { return schemas.TierSubjects(schemas.RootPostprocessed, t) },
		Next:          func(ev *schemas.JobEvent) string { return schemas.ResultSubject(ev.Tenant, ev.Task) },
		NextSchema:    schemas.SchemaJobResult,
		AckWait:       30 * time.Second,
		MaxDeliver:    5,
		MaxAckPending: 64,
		Concurrency:   2,
		Timeout:       time.Minute,
		Deadline:      45 * time.Second,
		Percent:       90,
	},
}

// StageNames lists the stages in pipeline order.
func StageNames() []schemas.Stage {
	out := make([]schemas.Stage, len(Stages))
	for i, s := range Stages {
		out[i] = s.Name
	}
	return out
}

// Lookup returns the row of a stage.
func Lookup(name schemas.Stage) (Stage, error) {
	for _, s := range Stages {
		if s.Name == name {
			return s, nil
		}
	}
	return Stage{}, fmt.Errorf("unknown stage %q (want %s)", name, stageList())
}

// Streams returns the pipeline's streams, one per stage, for streams.Topology.
func Streams() []streams.StreamSpec {
	out := make([]streams.StreamSpec, len(Stages))
	for i, s := range Stages {
		out[i] = s.Stream
	}
	return out
}

// Consumers returns the consumer spec of the stage; for PerModel rows, model selects
// the group ("inference-isnet") and must be a valid subject token.
func (s Stage) Consumers(model string) (streams.ConsumerSpec, error) {
	durable := s.Durable
	if s.PerModel {
		if err := schemas.ValidToken(model); err != nil {
			return streams.ConsumerSpec{}, fmt.Errorf("%s consumer model: %w", s.Name, err)
		}
		durable += "-" + model
	} else {
		model = ""
	}
	return streams.ConsumerSpec{
		Stream:        s.Stream.Name,
		Durable:       durable,
		Filter:        func(t schemas.Tier) string { return s.Filter(t, model) },
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver,
		MaxAckPending: s.MaxAckPending,
		Timeout:       s.Timeout,
	}, nil
}

// Consumers returns the consumer spec of a stage by name (see Stage.Consumers).
func Consumers(name schemas.Stage, model string) (streams.ConsumerSpec, error) {
	s, err := Lookup(name)
	if err != nil {
		return streams.ConsumerSpec{}, err
	}
	return s.Consumers(model)
}

// StagePercent is the progress shown when a stage begins (0 for ingest and unknown
// stages); a job at 100 is done.
func StagePercent(name schemas.Stage) int {
	s, err := Lookup(name)
	if err != nil {
		return 0
	}
	return s.Percent
}

func stageList() string {
	var b []byte
	for i, s := range Stages {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s.Name...)
	}
	return string(b)
}
