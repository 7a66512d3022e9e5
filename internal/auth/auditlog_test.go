package auth_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestAuditLog(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	log := auth.NewAuditLog(streams.JSPublisher{JS: s.JS})
	alice := auth.Principal{Tenant: "acme", User: "alice"}
	tests := []struct {
		name    string
		event   schemas.AuditEvent
		wantErr bool
	}{
		{name: "an event is stored on studio.audit.<action> with id and time filled in", event: auth.Event(alice, auth.ActionJobSubmit, "job/01j", auth.ResultAllowed, auth.Request{IP: "192.0.2.9", RequestID: "r1"})},
		{name: "the same event id is stored once", event: schemas.AuditEvent{ID: "fixed-id", Actor: "alice", Tenant: "acme", Action: auth.ActionDownload, Result: auth.ResultAllowed}},
		{name: "an action that is not one subject token is refused", event: auth.Event(alice, "job.submit", "", auth.ResultAllowed, auth.Request{}), wantErr: true},
		{name: "an event without a result is refused", event: schemas.AuditEvent{Actor: "alice", Action: auth.ActionLogin}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := log.Audit(ctx, tc.event)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.event.ID != "" {
				if err := log.Audit(ctx, tc.event); err != nil {
					t.Fatal(err)
				}
			}
			st, err := s.JS.Stream(ctx, schemas.StreamAudit)
			if err != nil {
				t.Fatal(err)
			}
			m, err := st.GetLastMsgForSubject(ctx, schemas.AuditSubject(tc.event.Action))
			if err != nil {
				t.Fatal(err)
			}
			var ev schemas.AuditEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Validate() != nil || ev.Actor != tc.event.Actor || ev.Resource != tc.event.Resource {
				t.Fatalf("stored %+v (%v)", ev, err)
			}
		})
	}
	st, _ := s.JS.Stream(ctx, schemas.StreamAudit)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%d audit messages, want 2 (the repeated id de-duplicated)", info.State.Msgs)
	}
}
