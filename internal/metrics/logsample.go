package metrics

import (
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// SampledMessages are the routine success lines SampleSuccessLogs thins out: one per
// finished stage run and one per HTTP request. Everything else is always written.
var SampledMessages = []string{"stage done", "http request"}

// SampleSuccessLogs makes l write only the first of every n routine success lines (see
// SampledMessages) at info level or below; an "http request" line with a status_code of
// 400 or more, and every warning and error, is always written. Written sampled lines
// carry sample_rate=n so that counts can be scaled back. n <= 1 writes everything.
//
// Logrus hooks cannot drop a line, so this wraps the logger's formatter: call it after
// SetFormatter. It is safe for concurrent logging; counting is per message.
func SampleSuccessLogs(l *logrus.Logger, n int) {
	if l == nil || n <= 1 {
		return
	}
	s := &sampler{next: l.Formatter, n: uint64(n), counts: map[string]*atomic.Uint64{}}
	for _, msg := range SampledMessages {
		s.counts[msg] = new(atomic.Uint64)
	}
	l.SetFormatter(s)
}

// sampler is a logrus.Formatter; counts is read-only after construction.
type sampler struct {
	next   logrus.Formatter
	n      uint64
	counts map[string]*atomic.Uint64
}

func (s *sampler) Format(e *logrus.Entry) ([]byte, error) {
	c, ok := s.counts[e.Message]
	if !ok || e.Level <= logrus.WarnLevel || isHTTPError(e.Data) {
		return s.next.Format(e)
	}
	if (c.Add(1)-1)%s.n != 0 {
		return nil, nil // an empty write: the line is dropped
	}
	data := make(logrus.Fields, len(e.Data)+1)
	for k, v := range e.Data {
		data[k] = v
	}
	data["sample_rate"] = s.n
	kept := *e
	kept.Data = data
	return s.next.Format(&kept)
}

func isHTTPError(f logrus.Fields) bool {
	switch v := f["status_code"].(type) {
	case int:
		return v >= 400
	case int64:
		return v >= 400
	case float64:
		return v >= 400
	}
	return false
}
