package telemetry

import (
	json "github.com/goccy/go-json"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// EncodeStageRuns carries stage runs in a TelemetryBatch on studio.telemetry.batch.
func EncodeStageRuns(producer string, seq uint64, rows []schemas.StageRun) (streams.Output, error) {
	return telemetryBatch(schemas.TelemetryBatch{StageRuns: rows}, producer, seq)
}

// EncodeHTTPRequests carries HTTP request rows in a TelemetryBatch.
func EncodeHTTPRequests(producer string, seq uint64, rows []schemas.HTTPRequest) (streams.Output, error) {
	return telemetryBatch(schemas.TelemetryBatch{HTTPRequests: rows}, producer, seq)
}

func telemetryBatch(b schemas.TelemetryBatch, producer string, seq uint64) (streams.Output, error) {
	b.Schema, b.Producer, b.Seq = schemas.SchemaTelemetryBatch, producer, seq
	data, err := json.Marshal(b)
	if err != nil {
		return streams.Output{}, err
	}
	return streams.Output{Subject: schemas.SubjectTelemetryBatch, MsgID: schemas.BatchMsgID("telemetry", producer, seq), Data: data}, nil
}

// EncodeAudit carries audit events in an AuditBatch on studio.audit.batch.
func EncodeAudit(producer string, seq uint64, rows []schemas.AuditEvent) (streams.Output, error) {
	data, err := json.Marshal(schemas.AuditBatch{Schema: schemas.SchemaAuditBatch, Producer: producer, Seq: seq, Events: rows})
	if err != nil {
		return streams.Output{}, err
	}
	return streams.Output{Subject: schemas.SubjectAuditBatch, MsgID: schemas.BatchMsgID("audit", producer, seq), Data: data}, nil
}
