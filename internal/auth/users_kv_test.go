package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestUsers(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	users, err := auth.OpenUsers(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*auth.User{
		{Tenant: "acme", ID: "carol", Tier: schemas.TierFree},
		{Tenant: "acme", ID: "alice", Tier: schemas.TierNormal},
		{Tenant: "globex", ID: "alice", Tier: schemas.TierPremium},
	} {
		if err := users.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		run  func() error
		want error
		// anyErr accepts any error (validation failures have no sentinel).
		anyErr bool
	}{
		{name: "a user id is unique within a tenant", run: func() error {
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "alice", Tier: schemas.TierFree})
		}, want: auth.ErrUserExists},
		{name: "a new user gets the default scopes", run: func() error {
			u, err := users.Get(ctx, "acme", "alice")
			if err == nil && (!u.Principal().Has(auth.ScopeJobsWrite) || u.Principal().Has(auth.ScopeAdmin)) {
				return errors.New("wrong default scopes")
			}
			return err
		}},
		{name: "the same id in another tenant is another user", run: func() error {
			u, err := users.Get(ctx, "globex", "alice")
			if err == nil && u.Tier != schemas.TierPremium {
				return errors.New("got the wrong alice")
			}
			return err
		}},
		{name: "listing a tenant shows only its users, sorted", run: func() error {
			list, err := users.List(ctx, "acme")
			if err == nil && (len(list) != 2 || list[0].ID != "alice" || list[1].ID != "carol") {
				return errors.New("wrong list")
			}
			return err
		}},
		{name: "set-tier changes the tier", run: func() error {
			u, err := users.SetTier(ctx, "acme", "carol", schemas.TierPremium)
			if err == nil && u.Tier != schemas.TierPremium {
				return errors.New("tier unchanged")
			}
			return err
		}},
		{name: "set-tier refuses an unknown tier", run: func() error {
			_, err := users.SetTier(ctx, "acme", "carol", "gold")
			if err == nil {
				return errors.New("accepted gold")
			}
			return nil
		}},
		{name: "set-tier of a missing user is not found", run: func() error {
			_, err := users.SetTier(ctx, "acme", "nobody", schemas.TierFree)
			return err
		}, want: auth.ErrUserNotFound},
		{name: "a deleted user is gone and may be created again", run: func() error {
			if err := users.Delete(ctx, "acme", "carol"); err != nil {
				return err
			}
			if _, err := users.Get(ctx, "acme", "carol"); !errors.Is(err, auth.ErrUserNotFound) {
				return errors.New("still there")
			}
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "carol", Tier: schemas.TierFree})
		}},
		{name: "ids that are not subject tokens are refused", run: func() error {
			return users.Create(ctx, &auth.User{Tenant: "acme", ID: "a.b", Tier: schemas.TierFree})
		}, anyErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.anyErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
