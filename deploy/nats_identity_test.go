package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// productionIngest runs the real ingest service, with security on and --nats-accounts
// TENANT_ACME=acme, on a server started from deploy/nats/nats-server.conf, connected
// as the ingest role. It returns the job store and the security wiring.
func productionIngest(t *testing.T, s interface{ ClientURL() string }, passwords map[string]string) (*jobs.Store, *jobs.Index, *ingest.Security) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc := dialRoleURL(t, s.ClientURL(), "ingest", passwords["ingest"])
	noErr(t, topology.Provision(ctx, rc.js, streams.DefaultTopology(1)))
	jobStore, err := jobs.Open(ctx, rc.js)
	noErr(t, err)
	blobs, err := natsobj.Open(ctx, rc.js, natsobj.Bucket)
	noErr(t, err)
	idem, err := jobs.OpenIdempotency(ctx, rc.js)
	noErr(t, err)
	index, err := jobs.OpenIndex(ctx, rc.js)
	noErr(t, err)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := &app.Config{DataDir: t.TempDir(), Auth: "on", NATSAccounts: "TENANT_ACME=acme",
		JWT: auth.Config{JWTKeys: "k1:HS256:" + base64.RawURLEncoding.EncodeToString(secret), AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour}}
	sec, err := app.NewSecurity(ctx, cfg, app.Deps{Bus: &app.Bus{NC: rc.nc, JS: rc.js}, Blobs: blobs})
	noErr(t, err)
	cat := models.NewCatalog()
	noErr(t, cat.Add(models.ISNet("small", "/nonexistent")))
	log := logrus.New()
	log.SetOutput(io.Discard)
	svc := ingest.NewService(ingest.Config{}, jobStore, blobs, streams.JSPublisher{JS: rc.js}, cat,
		func(context.Context, schemas.Tier) (int, error) { return 0, nil }, nil, log,
		ingest.WithIdempotency(idem), ingest.WithJobIndex(index), ingest.WithSecurity(sec))
	done := make(chan error, 1)
	go func() { done <- svc.ServeNATS(ctx, streams.RequestServer{NC: rc.nc}) }()
	t.Cleanup(func() {
		cancel()
		<-done
		svc.Close()
	})
	// Listening once the micro service answers the operator's ping.
	op := dialRoleURL(t, s.ClientURL(), "operator", passwords["operator"])
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := op.nc.Request("$SRV.PING.studio-ingest", nil, 200*time.Millisecond); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the NATS entry did not start")
		}
	}
	return jobStore, index, sec
}

// dialRoleURL is dialRole for a server known by its client URL.
func dialRoleURL(t *testing.T, clientURL, user, password string) *roleConn {
	t.Helper()
	u := strings.Replace(clientURL, "nats://", "nats://"+user+":"+password+"@", 1)
	nc, err := streams.Dial(u, "deploy-test-"+user, "")
	noErr(t, err)
	t.Cleanup(nc.Close)
	rc := &roleConn{nc: nc}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		rc.mu.Lock()
		rc.errs = append(rc.errs, err)
		rc.mu.Unlock()
	})
	rc.js, err = jetstream.New(nc)
	noErr(t, err)
	return rc
}

func tinyPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.White)
	var buf bytes.Buffer
	noErr(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// TestANATSSubmissionIsTheJobOfTheConnectionsUser runs the production NATS config with
// the real ingest service and tries, as tenant acme's NATS user, to submit as somebody
// else: by naming another user or tenant in the body, by writing a Nats-Request-Info
// header, by sending another user's API key. Every job it gets is its own.
func TestANATSSubmissionIsTheJobOfTheConnectionsUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JetStream server")
	}
	passwords := map[string]string{}
	for _, r := range prodRoles {
		passwords[r] = "secret-" + r
	}
	s := startProductionServer(t, prodEnv(passwords))
	jobStore, index, sec := productionIngest(t, s, passwords)
	ctx := context.Background()
	for _, u := range []auth.User{
		{Tenant: "acme", ID: "acme", Tier: schemas.TierFree, Scopes: []auth.Scope{auth.ScopeJobsWrite, auth.ScopeJobsRead}},
		{Tenant: "acme", ID: "alice", Tier: schemas.TierPremium, Scopes: auth.UserScopes},
		{Tenant: "globex", ID: "gus", Tier: schemas.TierPremium, Scopes: auth.UserScopes},
	} {
		noErr(t, sec.Users.Create(ctx, &u))
	}
	aliceKey, aliceFull, err := auth.NewAPIKey("acme", "alice", "alice's", schemas.TierPremium, []auth.Scope{auth.ScopeJobsWrite}, time.Time{}, 0, time.Now())
	noErr(t, err)
	noErr(t, sec.Keys.Create(ctx, aliceKey))

	acme := dialRoleURL(t, s.ClientURL(), "acme", passwords["tenant_acme"])
	img := tinyPNG(t)
	submit := func(t *testing.T, body schemas.JobRequest, hdr nats.Header) (*schemas.JobRecord, string) {
		t.Helper()
		body.Image = &schemas.ImageInput{Data: img}
		data, err := json.Marshal(body)
		noErr(t, err)
		m := nats.NewMsg("studio.submit." + string(schemas.TaskRemoveBackground))
		m.Data = data
		for k, v := range hdr {
			m.Header[k] = v
		}
		res, err := acme.nc.RequestMsg(m, 10*time.Second)
		noErr(t, err)
		if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(res.Data, &p)
			return nil, code + " " + p.Code
		}
		var reply schemas.SubmitReply
		noErr(t, json.Unmarshal(res.Data, &reply))
		rec, err := jobStore.Get(ctx, reply.JobID)
		noErr(t, err)
		return rec, ""
	}

	t.Run("a request naming nobody is a job of the connection's user", func(t *testing.T) {
		rec, refused := submit(t, schemas.JobRequest{Tier: schemas.TierPremium}, nil)
		if refused != "" {
			t.Fatalf("refused: %s", refused)
		}
		if rec.Tenant != "acme" || rec.User != "acme" || rec.Tier != schemas.TierFree {
			t.Errorf("job of %s/%s at tier %s, want acme/acme at the user's tier free", rec.Tenant, rec.User, rec.Tier)
		}
	})
	forged := func(acc, user string) string {
		b, _ := json.Marshal(map[string]string{"acc": acc, "user": user})
		return string(b)
	}
	for _, tc := range []struct {
		name string
		body schemas.JobRequest
		hdr  nats.Header
	}{
		{"naming another user of the tenant in the body is refused", schemas.JobRequest{Tenant: "acme", User: "alice"}, nil},
		{"naming another tenant in the body is refused", schemas.JobRequest{Tenant: "globex", User: "gus"}, nil},
		{"a forged Nats-Request-Info header changes nothing", schemas.JobRequest{}, nats.Header{ingest.HeaderRequestInfo: {forged("TENANT_ACME", "alice")}}},
		{"a forged header naming another account changes nothing", schemas.JobRequest{}, nats.Header{ingest.HeaderRequestInfo: {forged("STUDIO", "operator")}}},
		{"another user's API key changes nothing", schemas.JobRequest{}, nats.Header{"Authorization": {"Bearer " + aliceFull}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, refused := submit(t, tc.body, tc.hdr)
			if rec != nil && (rec.Tenant != "acme" || rec.User != "acme") {
				t.Fatalf("acme's NATS user got a job of %s/%s", rec.Tenant, rec.User)
			}
			if rec == nil && !strings.HasPrefix(refused, "403") {
				t.Errorf("refused with %q, want a 403", refused)
			}
		})
	}
	// nats-server replaces only the header of the exact name; a spelling in another case
	// travels next to the real one. Go walks a map in random order, so the check runs
	// many times: a reader that picked either header by case-insensitive match took
	// the forged one in most tries.
	for _, name := range []string{"nats-request-info", "NATS-REQUEST-INFO", "Nats-request-info"} {
		t.Run("a sender header spelled "+name+" is refused", func(t *testing.T) {
			for range 20 {
				rec, refused := submit(t, schemas.JobRequest{}, nats.Header{name: {forged("TENANT_ACME", "alice")}})
				if rec != nil || refused != "403 nats_sender_forged" {
					t.Fatalf("got job %v, refusal %q; want 403 nats_sender_forged", rec, refused)
				}
			}
		})
	}
	for _, victim := range [][2]string{{"acme", "alice"}, {"globex", "gus"}} {
		ids, err := index.List(ctx, victim[0], victim[1])
		noErr(t, err)
		if len(ids) != 0 {
			t.Errorf("%s/%s has %d jobs; nobody but themselves may submit for them", victim[0], victim[1], len(ids))
		}
	}

	t.Run("a NATS user whose studio user is disabled is refused until enabled", func(t *testing.T) {
		_, err := sec.Users.SetDisabled(ctx, "acme", "acme", true)
		noErr(t, err)
		rec, refused := submit(t, schemas.JobRequest{}, nil)
		if rec != nil || refused != "403 user_disabled" {
			t.Errorf("got job %v, refusal %q; want 403 user_disabled", rec, refused)
		}
		_, err = sec.Users.SetDisabled(ctx, "acme", "acme", false)
		noErr(t, err)
		if rec, refused := submit(t, schemas.JobRequest{}, nil); rec == nil {
			t.Errorf("refused after enable: %s", refused)
		}
	})
	t.Run("a NATS user with no studio user of its name is refused", func(t *testing.T) {
		noErr(t, sec.Users.Delete(ctx, "acme", "acme"))
		rec, refused := submit(t, schemas.JobRequest{}, nil)
		if rec != nil || refused != "403 user_not_found" {
			t.Errorf("got job %v, refusal %q; want 403 user_not_found", rec, refused)
		}
	})
}

// TestARoleCannotReadAnotherRolesReplies checks the per-role inboxes of the production
// config: each role may subscribe to _INBOX.<role>.> only, which streams.Dial uses.
func TestARoleCannotReadAnotherRolesReplies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JetStream server")
	}
	passwords := map[string]string{}
	for _, r := range prodRoles {
		passwords[r] = "secret-" + r
	}
	s := startProductionServer(t, prodEnv(passwords))
	ingestConn := dialRoleURL(t, s.ClientURL(), "ingest", passwords["ingest"])
	if got := ingestConn.nc.NewInbox(); !strings.HasPrefix(got, "_INBOX.ingest.") {
		t.Fatalf("ingest's inbox is %s, want _INBOX.ingest.*", got)
	}
	for _, role := range []string{"preprocess", "inference", "postprocess", "store", "sink"} {
		t.Run(role+" cannot subscribe to ingest's or everyone's replies", func(t *testing.T) {
			rc := dialRoleURL(t, s.ClientURL(), role, passwords[role])
			for _, subj := range []string{"_INBOX.>", "_INBOX.ingest.>", "_INBOX.*.>", ">"} {
				sub, err := rc.nc.SubscribeSync(subj)
				noErr(t, err)
				rc.subscribeDenied(t, subj)
				_ = sub.Unsubscribe()
			}
			// Its own replies work: a JetStream API call answers.
			actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := rc.js.AccountInfo(actx); err != nil {
				t.Errorf("%s's own JetStream replies: %v", role, err)
			}
		})
	}
	t.Run("a tenant sees none of the service's replies", func(t *testing.T) {
		acme := dialRoleURL(t, s.ClientURL(), "acme", passwords["tenant_acme"])
		spy, err := acme.nc.SubscribeSync("_INBOX.>")
		noErr(t, err)
		noErr(t, acme.nc.Flush())
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = ingestConn.js.AccountInfo(actx)
		noErr(t, err)
		if m, err := spy.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("tenant acme read a reply meant for ingest on %s", m.Subject)
		}
	})
}

// subscribeDenied asserts that the server refused a subscription to subj.
func (rc *roleConn) subscribeDenied(t *testing.T, subj string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = rc.nc.Flush()
		rc.mu.Lock()
		for i, e := range rc.errs {
			msg := strings.ToLower(e.Error())
			if strings.Contains(msg, "permissions violation for subscription") && strings.Contains(msg, strings.ToLower(subj)) {
				rc.errs = append(rc.errs[:i], rc.errs[i+1:]...)
				rc.mu.Unlock()
				return
			}
		}
		rc.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s: subscription to %s was not refused", rc.nc.Opts.Name, subj)
}
