package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/creativeai-studio/studio/schemas"
)

// UseTicket marks a ticket: a short-lived, single-use credential for a job's event
// stream (WebSocket or server-sent events), where a browser cannot set an
// Authorization header and a query string ends up in access logs.
const UseTicket TokenUse = "ticket"

// Ticket limits.
const (
	// TicketTTL is how long a ticket may wait to be used.
	TicketTTL = 45 * time.Second
	// MaxTicketJobs is the most jobs one ticket names.
	MaxTicketJobs = 16
)

// Ticket errors; both wrap ErrInvalidToken (answer 401).
var (
	ErrTicketUsed     = errors.New("auth: ticket already used")
	ErrTicketWrongJob = errors.New("auth: ticket is not for this job")
)

// Ticket is what POST /v1/tickets returns.
type Ticket struct {
	Ticket    string    `json:"ticket" doc:"pass as ?ticket= to GET /v1/jobs/{id}/events, once"`
	Jobs      []string  `json:"jobs" doc:"the jobs it may follow"`
	ExpiresAt time.Time `json:"expires_at"`
	ExpiresIn int       `json:"expires_in" doc:"seconds"`
}

// IssueTicket mints a ticket for p to follow jobs (1 to MaxTicketJobs ids; the caller
// has checked that p may see each). It is signed like an access token but has its own
// token_use, so it is refused everywhere a token is expected, and it expires after
// TicketTTL.
func (i *Issuer) IssueTicket(p Principal, jobs []string) (Ticket, error) {
	if len(jobs) == 0 || len(jobs) > MaxTicketJobs {
		return Ticket{}, fmt.Errorf("auth: a ticket names 1 to %d jobs, not %d", MaxTicketJobs, len(jobs))
	}
	for _, j := range jobs {
		if err := schemas.ValidToken(j); err != nil {
			return Ticket{}, fmt.Errorf("auth: ticket job id: %w", err)
		}
	}
	now := i.now()
	exp := now.Add(TicketTTL)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: i.name, Subject: p.User, Audience: jwt.ClaimStrings{i.audience}, ID: NewTokenID(),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
		Tenant: p.Tenant, Tier: p.Tier, Use: UseTicket, Jobs: slices.Clone(jobs), Scopes: []Scope{ScopeJobsRead}, Key: p.KeyID,
	}
	if slices.Contains(p.Scopes, ScopeAdmin) {
		// A tenant admin follows the tenant's jobs (CheckJob); the ticket still only
		// opens the event streams of the jobs it names.
		c.Scopes = append(c.Scopes, ScopeAdmin)
	}
	tok, err := i.sign(c)
	if err != nil {
		return Ticket{}, err
	}
	return Ticket{Ticket: tok, Jobs: c.Jobs, ExpiresAt: exp.UTC(), ExpiresIn: int(TicketTTL / time.Second)}, nil
}

// RedeemTicket checks a ticket for following job and uses it up: signature, use,
// expiry (exact, without the clock leeway of tokens), the job, the user still
// existing and being enabled, and then a claim of its id in the TokenStore, which only
// the first presentation wins on any replica. It returns the caller with the jobs:read scope
// (and admin when a tenant admin minted it, so that CheckJob lets them follow the
// tenant's jobs), and KeyID set when an API key minted it: the caller checks that key
// (APIKeys.Lineage), which the Issuer does not know. The HTTP layer accepts a ticket on
// event streams only.
func (i *Issuer) RedeemTicket(ctx context.Context, ticket, job string) (Principal, error) {
	c, err := i.parse(ticket, UseTicket)
	if err != nil {
		return Principal{}, err
	}
	if c.ExpiresAt == nil || !i.now().Before(c.ExpiresAt.Time) {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
	}
	if !slices.Contains(c.Jobs, job) {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTicketWrongJob)
	}
	u, err := i.users.Get(ctx, c.Tenant, c.Subject)
	if errors.Is(err, ErrUserNotFound) {
		return Principal{}, fmt.Errorf("%w: %w: the user no longer exists", ErrInvalidToken, ErrTokenRevoked)
	}
	if err != nil {
		return Principal{}, err
	}
	if err := u.CheckEnabled(); err != nil {
		return Principal{}, err
	}
	first, err := i.store.Claim(ctx, DenyKeyTicket(c.ID), c.ExpiresAt.Time.Add(Leeway))
	if err != nil {
		return Principal{}, err
	}
	if !first {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTicketUsed)
	}
	scopes := []Scope{ScopeJobsRead}
	if slices.Contains(c.Scopes, ScopeAdmin) && slices.Contains(u.Scopes, ScopeAdmin) {
		scopes = append(scopes, ScopeAdmin)
	}
	return Principal{Tenant: u.Tenant, User: u.ID, Tier: u.Tier, Scopes: scopes, TokenID: c.ID, KeyID: c.Key}, nil
}

// DenyKeyTicket names the entry that marks a ticket used; see DenyKeyToken.
func DenyKeyTicket(jti string) string { return "tkt." + jti }
