package metrics_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/metrics"
)

func jsonLogger(buf *bytes.Buffer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(buf)
	l.SetFormatter(&logrus.JSONFormatter{FieldMap: logrus.FieldMap{logrus.FieldKeyMsg: "message"}})
	return l
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestSampleSuccessLogs(t *testing.T) {
	tests := []struct {
		name string
		n    int
		log  func(l logrus.FieldLogger)
		want int
	}{
		{"1 in 4 stage-done lines are written, the first among them", 4, func(l logrus.FieldLogger) {
			for range 10 {
				l.WithField("stage", "inference").Info("stage done")
			}
		}, 3},
		{"successful http requests are sampled", 5, func(l logrus.FieldLogger) {
			for range 10 {
				l.WithField("status_code", 200).Info("http request")
			}
		}, 2},
		{"failed http requests are always written", 5, func(l logrus.FieldLogger) {
			for range 6 {
				l.WithField("status_code", 503).Info("http request")
			}
		}, 6},
		{"warnings and errors are always written", 100, func(l logrus.FieldLogger) {
			for range 3 {
				l.Warn("stage done")
				l.Error("http request")
			}
		}, 6},
		{"other messages are never sampled", 100, func(l logrus.FieldLogger) {
			for range 7 {
				l.Info("job queued")
			}
		}, 7},
		{"n of 1 writes everything", 1, func(l logrus.FieldLogger) {
			for range 7 {
				l.Info("stage done")
			}
		}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := jsonLogger(&buf)
			metrics.SampleSuccessLogs(l, tc.n)
			tc.log(l.WithField("service", "studio"))
			got := lines(t, &buf)
			if len(got) != tc.want {
				t.Fatalf("%d lines written, want %d:\n%s", len(got), tc.want, buf.String())
			}
			for _, line := range got {
				if line["service"] != "studio" || line["message"] == "" {
					t.Errorf("line lost its fields: %v", line)
				}
				sampled := line["level"] == "info" && (line["message"] == "stage done" || line["message"] == "http request") && tc.n > 1
				if _, has := line["sample_rate"]; has != (sampled && line["status_code"] != float64(503)) {
					t.Errorf("sample_rate present = %v on %v", has, line)
				}
			}
		})
	}
}
