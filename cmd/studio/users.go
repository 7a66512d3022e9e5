package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

const usersUsage = `usage: studio users COMMAND --tenant T [--user U] [flags]

  create    --tenant T --user U [--tier normal] [--admin]   add a user
  list      --tenant T                                     list a tenant's users
  set-tier  --tenant T --user U --tier premium|normal|free change a tier (applies at the next token refresh)
  disable   --tenant T --user U                            refuse every credential of the user, revoke their sessions, close their streams
  enable    --tenant T --user U                            lift a disable: API keys that were not revoked work again
  delete    --tenant T --user U                            revoke the user's sessions and delete the record; jobs stay
  erase     --tenant T --user U                            GDPR erasure: every object, record, message and analytics row
  token     --tenant T --user U                            print an access and a refresh token for the user

Connects to --nats-url (default: the embedded server of a running studio up, nats://<--nats-listen>).
Every command is recorded in the audit trail with --by as the actor.`

// usersOptions are the parsed arguments of one users command.
type usersOptions struct {
	tenant, user, tier, by string
	admin                  bool
}

// usersDeps are what the users commands act on; runUsers opens them on a NATS
// connection, tests on an embedded server.
type usersDeps struct {
	Users  *auth.Users
	Keys   *auth.APIKeys
	Audit  auth.Auditor
	Issuer func() (*auth.Issuer, error)
	Eraser func() (*erasure.Eraser, error)
}

// usersVerbs are the users commands.
var usersVerbs = []string{"create", "list", "set-tier", "disable", "enable", "delete", "erase", "token"}

func runUsers(ctx context.Context, args []string, stdout io.Writer) error {
	sub, fs, done, err := verbOf("users", usersVerbs, args, usersUsage, stdout)
	if done {
		return err
	}
	cfg := &app.Config{} // its JWT settings (--jwt-keys, --jwt-key-file, lifetimes) sign tokens
	cfg.RegisterFlags(fs)
	var o usersOptions
	fs.StringVar(&o.tenant, "tenant", "", "tenant id")
	fs.StringVar(&o.user, "user", "", "user id (letters, digits, '-', '_')")
	fs.StringVar(&o.tier, "tier", string(schemas.TierNormal), "premium, normal or free")
	fs.BoolVar(&o.admin, "admin", false, "create: also grant the admin scope (manage the tenant's users)")
	fs.StringVar(&o.by, "by", defaultActor(), "who runs the command, for the audit trail")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), usersUsage)
	}
	if err := o.check(sub); err != nil {
		return err
	}
	if err := cfg.JWT.Validate(); err != nil {
		return err
	}
	bus, log, err := connectCLI(ctx, cfg, "studio-users")
	if err != nil {
		return err
	}
	defer bus.Close()
	users, err := auth.OpenUsers(ctx, bus.JS)
	if err != nil {
		return err
	}
	keys, err := auth.OpenAPIKeys(ctx, bus.JS)
	if err != nil {
		return err
	}
	deps := usersDeps{
		Users: users,
		Keys:  keys,
		Audit: auth.NewAuditLog(streams.JSPublisher{JS: bus.JS}),
		Issuer: func() (*auth.Issuer, error) {
			keys, err := cfg.JWT.ExistingKeySet(filepath.Join(cfg.DataDir, "jwt-keys"))
			if err != nil {
				return nil, err
			}
			tokens, err := auth.OpenTokens(ctx, bus.JS)
			if err != nil {
				return nil, err
			}
			return auth.NewIssuer(keys, tokens, users, cfg.JWT.IssuerOptions()...)
		},
		Eraser: func() (*erasure.Eraser, error) {
			blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
			if err != nil {
				return nil, err
			}
			return erasure.NewEraser(ctx, bus.JS, blobs)
		},
	}
	return usersCommand(ctx, sub, o, deps, stdout)
}

func (o usersOptions) check(sub string) error {
	if err := schemas.ValidToken(o.tenant); err != nil {
		return fmt.Errorf("--tenant: %w", err)
	}
	if sub != "list" {
		if err := schemas.ValidToken(o.user); err != nil {
			return fmt.Errorf("--user: %w", err)
		}
	}
	if !schemas.Tier(o.tier).Valid() {
		return fmt.Errorf("--tier %q: use premium, normal or free", o.tier)
	}
	return nil
}

// usersCommand runs one parsed command and records it in the audit trail.
func usersCommand(ctx context.Context, sub string, o usersOptions, d usersDeps, stdout io.Writer) error {
	action, err := usersAction(ctx, sub, o, d, stdout)
	if action == "" {
		return err
	}
	result := auth.ResultAllowed
	if err != nil {
		result = auth.ResultError
	}
	ev := auth.Event(auth.Principal{Tenant: o.tenant, User: o.by}, action, "user/"+o.user, result, auth.Request{})
	if aerr := d.Audit.Audit(ctx, ev); aerr != nil {
		return errors.Join(err, fmt.Errorf("the action was not recorded in the audit trail: %w", aerr))
	}
	return err
}

// usersAction performs the command and returns its audit action ("" when there is
// nothing to record: listing, or the erasure, which records itself).
func usersAction(ctx context.Context, sub string, o usersOptions, d usersDeps, stdout io.Writer) (string, error) {
	switch sub {
	case "create":
		u := &auth.User{Tenant: o.tenant, ID: o.user, Tier: schemas.Tier(o.tier)}
		if o.admin {
			u.Scopes = append(append([]auth.Scope(nil), auth.UserScopes...), auth.ScopeAdmin)
		}
		if err := d.Users.Create(ctx, u); err != nil {
			return auth.ActionUserCreate, err
		}
		fmt.Fprintf(stdout, "created %s/%s (%s)\n", u.Tenant, u.ID, u.Tier)
		return auth.ActionUserCreate, nil
	case "list":
		list, err := d.Users.List(ctx, o.tenant)
		if err != nil {
			return "", err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tTIER\tSCOPES\tCREATED\tSTATE")
		for _, u := range list {
			scopes := make([]string, len(u.Scopes))
			for i, s := range u.Scopes {
				scopes[i] = string(s)
			}
			state := "enabled"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Tier, strings.Join(scopes, ","), u.CreatedAt.Format("2006-01-02 15:04"), state)
		}
		return "", tw.Flush()
	case "set-tier":
		u, err := d.Users.SetTier(ctx, o.tenant, o.user, schemas.Tier(o.tier))
		if err != nil {
			return auth.ActionUserSetTier, err
		}
		fmt.Fprintf(stdout, "%s/%s is now %s (tokens pick it up at their next refresh)\n", u.Tenant, u.ID, u.Tier)
		return auth.ActionUserSetTier, nil
	case "disable":
		// The flag first: from this write on every credential is refused, then the
		// sessions are revoked (as POST /v1/users/{id}/disable does).
		iss, err := d.Issuer()
		if err != nil {
			return auth.ActionUserDisable, err
		}
		if _, err := d.Users.SetDisabled(ctx, o.tenant, o.user, true); err != nil {
			return auth.ActionUserDisable, err
		}
		n, err := iss.RevokeUser(ctx, o.tenant, o.user)
		if err != nil {
			return auth.ActionUserDisable, err
		}
		fmt.Fprintf(stdout, "disabled %s/%s and revoked %d sessions; their API keys are refused and their live streams closed until `studio users enable`\n", o.tenant, o.user, n)
		return auth.ActionUserDisable, nil
	case "enable":
		if _, err := d.Users.SetDisabled(ctx, o.tenant, o.user, false); err != nil {
			return auth.ActionUserEnable, err
		}
		fmt.Fprintf(stdout, "enabled %s/%s; their API keys work again, sessions need a new login (`studio users token`)\n", o.tenant, o.user)
		return auth.ActionUserEnable, nil
	case "delete":
		iss, err := d.Issuer()
		if err != nil {
			return auth.ActionUserDelete, err
		}
		if _, err := d.Users.Get(ctx, o.tenant, o.user); err != nil {
			return auth.ActionUserDelete, err
		}
		n, err := iss.RevokeUser(ctx, o.tenant, o.user)
		if err != nil {
			return auth.ActionUserDelete, err
		}
		// The id may be created again; the former user's keys must not act for it.
		nk, err := d.Keys.RevokeOwnedBy(ctx, o.tenant, o.user)
		if err != nil {
			return auth.ActionUserDelete, err
		}
		if err := d.Users.Delete(ctx, o.tenant, o.user); err != nil {
			return auth.ActionUserDelete, err
		}
		fmt.Fprintf(stdout, "deleted %s/%s and revoked %d sessions and %d API keys; their jobs and files stay until `studio users erase`\n", o.tenant, o.user, n, nk)
		return auth.ActionUserDelete, nil
	case "erase":
		e, err := d.Eraser()
		if err != nil {
			return "", err
		}
		rep, err := e.Erase(ctx, o.tenant, o.user, erasure.WithRequestedBy(o.by))
		if rep != nil {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		}
		if err == nil && len(rep.InFlight) > 0 {
			fmt.Fprintf(os.Stderr, "warning: %d jobs were still running; run the erasure again once they have finished\n", len(rep.InFlight))
		}
		return "", err
	case "token":
		iss, err := d.Issuer()
		if err != nil {
			return auth.ActionLogin, err
		}
		pair, err := iss.Issue(ctx, o.tenant, o.user)
		if err != nil {
			return auth.ActionLogin, err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return auth.ActionLogin, enc.Encode(pair)
	}
	return "", fmt.Errorf("unknown users command %q", sub)
}

func defaultActor() string {
	for _, v := range []string{"STUDIO_OPERATOR", "USER"} {
		if s := os.Getenv(v); schemas.ValidToken(s) == nil {
			return "cli-" + s
		}
	}
	return "cli"
}
