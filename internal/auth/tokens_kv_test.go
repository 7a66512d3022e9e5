package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestDenyListEntriesExpireWithTheirToken(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	tokens, err := auth.OpenTokens(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		id         string
		until      time.Duration
		wantDenied bool
		expires    bool
	}{
		{name: "an id denied for a second is denied, then forgotten", id: "jti.short", until: time.Second, wantDenied: true, expires: true},
		{name: "a TTL under one second is rounded up, not refused", id: "jti.sub-second", until: 300 * time.Millisecond, wantDenied: true, expires: true},
		{name: "an id whose token already expired needs no entry", id: "jti.past", until: -time.Minute},
		{name: "an id denied for a week stays denied", id: "fam.long", until: 7 * 24 * time.Hour, wantDenied: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tokens.Deny(ctx, tc.id, time.Now().Add(tc.until)); err != nil {
				t.Fatal(err)
			}
			if err := tokens.Deny(ctx, tc.id, time.Now().Add(tc.until)); err != nil {
				t.Fatalf("denying twice: %v", err)
			}
			denied, err := tokens.Denied(ctx, "jti.other", tc.id)
			if err != nil || denied != tc.wantDenied {
				t.Fatalf("Denied = %v, %v; want %v", denied, err, tc.wantDenied)
			}
			if tc.expires {
				streamstest.Eventually(t, 10*time.Second, func() bool {
					d, err := tokens.Denied(ctx, tc.id)
					return err == nil && !d
				}, "deny entry %s did not expire", tc.id)
			}
		})
	}
}
