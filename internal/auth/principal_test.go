package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

func TestPrincipalChecks(t *testing.T) {
	alice := auth.Principal{Tenant: "acme", User: "alice", Scopes: []auth.Scope{auth.ScopeJobsRead}}
	admin := auth.Principal{Tenant: "acme", User: "root", Scopes: []auth.Scope{auth.ScopeAdmin}}
	job := &schemas.JobRecord{ID: "01j", Tenant: "acme", User: "bob"}
	foreign := &schemas.JobRecord{ID: "01k", Tenant: "globex", User: "alice"}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{name: "the owner sees their job", err: auth.CheckJob(auth.Principal{Tenant: "acme", User: "bob", Scopes: []auth.Scope{auth.ScopeJobsRead}}, job)},
		{name: "another user of the same tenant does not see the job", err: auth.CheckJob(alice, job), want: auth.ErrNotVisible},
		{name: "an admin of the job's tenant sees the job", err: auth.CheckJob(admin, job)},
		{name: "a job of another tenant is not found, even with the same user id", err: auth.CheckJob(alice, foreign), want: auth.ErrNotVisible},
		{name: "an admin of another tenant does not see the job either", err: auth.CheckJob(auth.Principal{Tenant: "globex", Scopes: []auth.Scope{auth.ScopeAdmin}}, job), want: auth.ErrNotVisible},
		{name: "a principal without a tenant sees nothing", err: auth.CheckJob(auth.Principal{}, &schemas.JobRecord{}), want: auth.ErrNotVisible},
		{name: "a held scope is granted", err: alice.Require(auth.ScopeJobsRead)},
		{name: "a missing scope is forbidden", err: alice.Require(auth.ScopeJobsWrite), want: auth.ErrForbidden},
		{name: "admin holds every scope", err: admin.Require(auth.ScopeKeysManage)},
		{name: "an API key may carry scopes its creator holds", err: alice.Grantable([]auth.Scope{auth.ScopeJobsRead})},
		{name: "an API key may not carry more than its creator holds", err: alice.Grantable([]auth.Scope{auth.ScopeJobsRead, auth.ScopeJobsWrite}), want: auth.ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) || (tc.want == nil) != (tc.err == nil) {
				t.Fatalf("got %v, want %v", tc.err, tc.want)
			}
		})
	}
	ctx := auth.NewContext(context.Background(), alice)
	if p, ok := auth.FromContext(ctx); !ok || p.User != "alice" {
		t.Fatal("the principal did not survive the context")
	}
}
