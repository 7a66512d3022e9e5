package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// loadNATSConfig parses a NATS server config file the way nats-server does, with env
// set for its $VARIABLE references.
func loadNATSConfig(t *testing.T, rel string, env map[string]string) *server.Options {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return opts
}

// assertCluster checks the settings every one of our NATS configs must share.
func assertCluster(t *testing.T, opts *server.Options, routeHosts []string) {
	t.Helper()
	if !opts.JetStream {
		t.Error("JetStream is not enabled")
	}
	if opts.HTTPPort != 8222 {
		t.Errorf("monitoring port %d, want 8222 (KEDA and the exporter read it)", opts.HTTPPort)
	}
	if opts.Cluster.Name != "studio" || opts.Cluster.Port != 6222 {
		t.Errorf("cluster %q on port %d, want studio on 6222", opts.Cluster.Name, opts.Cluster.Port)
	}
	var hosts []string
	for _, r := range opts.Routes {
		hosts = append(hosts, r.Hostname())
		if r.Port() != "6222" {
			t.Errorf("route %s: want port 6222", r)
		}
	}
	if !slices.Equal(hosts, routeHosts) {
		t.Errorf("routes %q, want %q", hosts, routeHosts)
	}
	if opts.MaxPayload != 1<<20 {
		t.Errorf("max_payload %d, want 1MB (events are claim checks)", opts.MaxPayload)
	}
	if opts.LameDuckDuration != 30*time.Second || opts.LameDuckGracePeriod != 10*time.Second {
		t.Errorf("lame duck %v after %v, want 30s after 10s", opts.LameDuckDuration, opts.LameDuckGracePeriod)
	}
	if opts.ServerName != "" {
		t.Errorf("server_name %q is fixed in the file; it must come from --name per server", opts.ServerName)
	}
}

// statefulSetRoutes are the route hosts of the StatefulSet "nats" behind the headless
// service "nats-headless" (deploy/base/nats.yaml).
var statefulSetRoutes = []string{"nats-0.nats-headless", "nats-1.nats-headless", "nats-2.nats-headless"}

// prodRoles are the users of deploy/nats/nats-server.conf and their password variables.
var prodRoles = []string{"ingest", "preprocess", "inference", "postprocess", "store", "sink", "submitter", "operator", "tenant_acme", "sys"}

func prodEnv(passwords map[string]string) map[string]string {
	env := map[string]string{}
	for role, p := range passwords {
		env["NATS_"+strings.ToUpper(role)+"_PASSWORD"] = p
	}
	return env
}

func TestNATSConfigs(t *testing.T) {
	t.Run("the base cluster config matches the StatefulSet", func(t *testing.T) {
		assertCluster(t, loadNATSConfig(t, "deploy/base/nats.conf", nil), statefulSetRoutes)
	})
	t.Run("the production config keeps the cluster settings", func(t *testing.T) {
		passwords := map[string]string{}
		for _, r := range prodRoles {
			passwords[r] = "p-" + r
		}
		opts := loadNATSConfig(t, "deploy/nats/nats-server.conf", prodEnv(passwords))
		assertCluster(t, opts, statefulSetRoutes)
		if opts.SystemAccount != "SYS" {
			t.Errorf("system_account %q, want SYS", opts.SystemAccount)
		}
		var users []string
		writable := map[string]bool{}
		for _, u := range opts.Users {
			users = append(users, u.Username+"@"+u.Account.Name)
			if u.Password == "" {
				t.Errorf("user %s has no password", u.Username)
			}
			if u.Permissions == nil {
				if u.Account.Name == "STUDIO" && u.Username != "operator" {
					t.Errorf("user %s has no permissions: every role but operator must be limited", u.Username)
				}
				continue
			}
			if u.Permissions.Publish != nil {
				for _, subj := range u.Permissions.Publish.Allow {
					if b, ok := strings.CutPrefix(subj, "$KV."); ok {
						writable[strings.TrimSuffix(b, ".>")] = true
					}
				}
			}
		}
		// Every KV bucket the code declares must be writable by some role, or the
		// feature that uses it fails in production only.
		for _, b := range declaredKVBuckets(t) {
			if !writable[b] {
				t.Errorf("KV bucket %q (declared in the code) is writable by no role of nats-server.conf", b)
			}
		}
		slices.Sort(users)
		want := []string{"acme@TENANT_ACME", "inference@STUDIO", "ingest@STUDIO", "operator@STUDIO", "postprocess@STUDIO", "preprocess@STUDIO", "sink@STUDIO", "store@STUDIO", "submitter@SUBMITTERS", "sys@SYS"}
		if !slices.Equal(users, want) {
			t.Errorf("users %q, want %q", users, want)
		}
	})
	t.Run("a missing password stops the server instead of opening the role", func(t *testing.T) {
		for _, r := range prodRoles {
			if r != "sink" {
				t.Setenv("NATS_"+strings.ToUpper(r)+"_PASSWORD", "p")
			}
		}
		os.Unsetenv("NATS_SINK_PASSWORD")
		_, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), "deploy/nats/nats-server.conf"))
		if err == nil || !strings.Contains(err.Error(), "NATS_SINK_PASSWORD") {
			t.Errorf("config without NATS_SINK_PASSWORD: err = %v, want an error naming it", err)
		}
	})
}

// declaredKVBuckets returns the names of every KV bucket the product provisions: the
// one list, internal/topology.Buckets.
func declaredKVBuckets(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, b := range topology.Buckets(streams.DefaultTopology(1)) {
		out = append(out, b.Bucket)
	}
	if !slices.Contains(out, jobs.Bucket) {
		t.Fatalf("found no KV bucket declarations (got %q); update declaredKVBuckets", out)
	}
	return out
}

// roleConn is a connection as one user of the production config, collecting the
// asynchronous permission errors the server sends back.
type roleConn struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu   sync.Mutex
	errs []error
}

func dialRole(t *testing.T, s *server.Server, user, password string) *roleConn {
	t.Helper()
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	// The production path: credentials in STUDIO_NATS_URL, through streams.Dial.
	nc, err := streams.Dial(u.String(), "deploy-test-"+user, "")
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	rc := &roleConn{nc: nc}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		rc.mu.Lock()
		rc.errs = append(rc.errs, err)
		rc.mu.Unlock()
	})
	if rc.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return rc
}

// denied asserts that publishing on subj is refused with a permissions violation.
func (rc *roleConn) denied(t *testing.T, subj string) {
	t.Helper()
	if err := rc.nc.Publish(subj, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = rc.nc.Flush()
		rc.mu.Lock()
		for i, e := range rc.errs {
			if errors.Is(e, nats.ErrPermissionViolation) && strings.Contains(strings.ToLower(e.Error()), strings.ToLower(subj)) {
				rc.errs = slices.Delete(rc.errs, i, i+1)
				rc.mu.Unlock()
				return
			}
		}
		rc.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s: publish to %s was not refused", rc.nc.Opts.Name, subj)
}

// noErrors asserts that the server refused nothing so far.
func (rc *roleConn) noErrors(t *testing.T) {
	t.Helper()
	_ = rc.nc.Flush()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, e := range rc.errs {
		t.Errorf("%s: unexpected error: %v", rc.nc.Opts.Name, e)
	}
}

// noErr stops the (sub)test on an unexpected error.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestProductionNATSPermissions loads deploy/nats/nats-server.conf into a real server
// (standalone: the cluster block is dropped) and walks one job through the pipeline
// with each role's own user, as the deployed processes would: every role provisions the
// topology, consumes and acks its input, publishes its output, telemetry, dead letters
// and job-record updates, and is refused the subjects of other roles. Tenants see only
// their own results.
func TestProductionNATSPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JetStream server")
	}
	passwords := map[string]string{}
	for _, r := range prodRoles {
		passwords[r] = "secret-" + r
	}
	env := prodEnv(passwords)
	// One role with a bcrypt hash, as the config comments recommend, quoted so that the
	// `$` signs are not read as variables.
	hash, err := bcrypt.GenerateFromPassword([]byte(passwords["ingest"]), bcrypt.MinCost)
	noErr(t, err)
	env["NATS_INGEST_PASSWORD"] = `"` + string(hash) + `"`
	s := startProductionServer(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo := streams.DefaultTopology(1)
	const task = schemas.TaskRemoveBackground
	tier := schemas.TierFree

	// Tenants connect first so that they are subscribed when results are published.
	acme := dialRole(t, s, "acme", passwords["tenant_acme"])
	results, err := acme.nc.SubscribeSync("studio.results.>")
	noErr(t, err)
	noErr(t, acme.nc.Flush())

	ingest := dialRole(t, s, "ingest", passwords["ingest"])
	t.Run("ingest provisions, queues a job and stores its input", func(t *testing.T) {
		if err := topology.Provision(ctx, ingest.js, topo); err != nil {
			t.Fatalf("provision as ingest: %v", err)
		}
		_, err := ingest.js.Publish(ctx, schemas.RequestSubject(tier, task), []byte(`{"job_id":"j1"}`), jetstream.WithMsgID("j1-ingest"))
		noErr(t, err)
		kv, err := ingest.js.KeyValue(ctx, jobs.Bucket)
		noErr(t, err)
		_, err = kv.Put(ctx, "j1", []byte(`{"status":"queued"}`))
		noErr(t, err)
		obs, err := ingest.js.ObjectStore(ctx, natsobj.Bucket)
		noErr(t, err)
		_, err = obs.PutBytes(ctx, "in/j1", []byte("image bytes"))
		noErr(t, err)
		_, err = obs.GetBytes(ctx, "in/j1")
		noErr(t, err)
		_, err = ingest.js.Publish(ctx, schemas.TelemetrySubject(schemas.StageIngest), []byte(`{}`))
		noErr(t, err)
		for _, bucket := range []string{jobs.BucketCache, auth.BucketUsers, quota.BucketRateLimit} {
			kv, err := ingest.js.KeyValue(ctx, bucket)
			noErr(t, err)
			_, err = kv.Put(ctx, "probe", []byte(`{}`))
			noErr(t, err)
		}
		ingest.noErrors(t)
		ingest.denied(t, schemas.PreprocessedSubject(tier, "isnet"))
		ingest.denied(t, schemas.InferredSubject(tier, task))
		ingest.denied(t, "$JS.ACK.REQUESTS.preprocess-free.1.1.1.1.1")
	})

	next := map[schemas.Stage]string{
		schemas.StagePreprocess:  schemas.PreprocessedSubject(tier, "isnet"),
		schemas.StageInference:   schemas.InferredSubject(tier, task),
		schemas.StagePostprocess: schemas.PostprocessedSubject(tier, task),
		schemas.StageStore:       schemas.ResultSubject("acme", task),
	}
	// A subject each stage must not publish on: the output of another stage.
	foreign := map[schemas.Stage]string{
		schemas.StagePreprocess:  schemas.InferredSubject(tier, task),
		schemas.StageInference:   schemas.RequestSubject(tier, task),
		schemas.StagePostprocess: schemas.PreprocessedSubject(tier, "isnet"),
		schemas.StageStore:       schemas.InferredSubject(tier, task),
	}
	for _, stage := range processors.StageNames() {
		t.Run(string(stage)+" consumes its input and publishes only its output", func(t *testing.T) {
			rc := dialRole(t, s, string(stage), passwords[string(stage)])
			if err := topology.Provision(ctx, rc.js, topo); err != nil {
				t.Fatalf("provision as %s: %v", stage, err)
			}
			spec, err := processors.Consumers(stage, "isnet")
			noErr(t, err)
			cons, err := spec.Ensure(ctx, rc.js)
			noErr(t, err)
			batch, err := cons[tier].Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			noErr(t, err)
			var got int
			for m := range batch.Messages() {
				got++
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := m.DoubleAck(actx); err != nil {
					t.Errorf("ack as %s (is $JS.ACK.%s.> allowed?): %v", stage, spec.Stream, err)
				}
				cancel()
			}
			if batch.Error() != nil || got != 1 {
				t.Fatalf("fetch as %s: %d messages, err %v", stage, got, batch.Error())
			}
			_, err = rc.nc.QueueSubscribe(fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", spec.Stream, spec.DurableFor(tier)), "q", func(*nats.Msg) {})
			noErr(t, err)
			publish := []string{next[stage], schemas.TelemetrySubject(stage), schemas.DLQSubject(stage)}
			if stage == schemas.StageStore {
				publish = append(publish, schemas.ResultSubject("globex", task))
			}
			for _, subj := range publish {
				_, err = rc.js.Publish(ctx, subj, []byte(`{"job_id":"j1"}`), jetstream.WithMsgID("j1-"+subj))
				noErr(t, err)
			}
			kv, err := rc.js.KeyValue(ctx, jobs.Bucket)
			noErr(t, err)
			_, err = kv.Put(ctx, "j1", []byte(`{"status":"running","stage":"`+string(stage)+`"}`))
			noErr(t, err)
			if stage == schemas.StageStore {
				cache, err := rc.js.KeyValue(ctx, jobs.BucketCache)
				noErr(t, err)
				_, err = cache.Put(ctx, "sha256-probe", []byte(`{"job_id":"j1"}`))
				noErr(t, err)
			}
			obs, err := rc.js.ObjectStore(ctx, natsobj.Bucket)
			noErr(t, err)
			_, err = obs.GetBytes(ctx, "in/j1")
			noErr(t, err)
			rc.noErrors(t)
			rc.denied(t, foreign[stage])
			rc.denied(t, "studio.submit."+string(task))
			rc.denied(t, "$KV."+auth.BucketUsers+".probe")
		})
	}

	t.Run("a tenant receives its own results only", func(t *testing.T) {
		m, err := results.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("acme received no result: %v", err)
		}
		if m.Subject != schemas.ResultSubject("acme", task) {
			t.Errorf("acme received %s", m.Subject)
		}
		if m, err := results.NextMsg(300 * time.Millisecond); err == nil {
			t.Errorf("acme received another tenant's result on %s", m.Subject)
		}
	})

	t.Run("a tenant's feedback reaches the FEEDBACK stream", func(t *testing.T) {
		if err := acme.nc.Publish("studio.feedback", []byte(`{"job_id":"j1","rating":5}`)); err != nil {
			t.Fatal(err)
		}
		noErr(t, acme.nc.Flush())
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := ingest.js.Stream(ctx, schemas.StreamFeedback)
			noErr(t, err)
			info, err := st.Info(ctx)
			noErr(t, err)
			if info.State.Msgs == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("feedback did not reach the FEEDBACK stream")
			}
			time.Sleep(50 * time.Millisecond)
		}
		acme.noErrors(t)
	})

	t.Run("the sink reads telemetry and may publish nothing", func(t *testing.T) {
		rc := dialRole(t, s, "sink", passwords["sink"])
		if err := topology.Provision(ctx, rc.js, topo); err != nil {
			t.Fatalf("provision as sink: %v", err)
		}
		cons, err := rc.js.CreateOrUpdateConsumer(ctx, schemas.StreamTelemetry, jetstream.ConsumerConfig{Durable: "sink-telemetry", AckPolicy: jetstream.AckExplicitPolicy})
		noErr(t, err)
		batch, err := cons.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
		noErr(t, err)
		var got int
		for m := range batch.Messages() {
			got++
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := m.DoubleAck(actx); err != nil {
				t.Errorf("ack as sink: %v", err)
			}
			cancel()
		}
		if got == 0 {
			t.Error("sink fetched no telemetry")
		}
		rc.noErrors(t)
		rc.denied(t, schemas.RequestSubject(tier, task))
		rc.denied(t, "studio.telemetry.sink")
	})

	t.Run("an upstream submitter may only submit", func(t *testing.T) {
		info := make(chan string, 1)
		sub, err := ingest.nc.Subscribe("studio.submit.>", func(m *nats.Msg) {
			info <- m.Header.Get("Nats-Request-Info")
			_ = m.Respond([]byte(`{"job_id":"j3"}`))
		})
		noErr(t, err)
		defer sub.Unsubscribe()
		noErr(t, ingest.nc.Flush())
		rc := dialRole(t, s, "submitter", passwords["submitter"])
		reply, err := rc.nc.Request("studio.submit."+string(task), []byte(`{}`), 5*time.Second)
		if err != nil {
			t.Fatalf("submit request: %v", err)
		}
		if string(reply.Data) != `{"job_id":"j3"}` {
			t.Errorf("reply %q", reply.Data)
		}
		if got := <-info; !strings.Contains(got, `"acc":"SUBMITTERS"`) || !strings.Contains(got, `"user":"submitter"`) {
			t.Errorf("the request reached ingest with Nats-Request-Info %q, want the SUBMITTERS account's user submitter", got)
		}
		rc.noErrors(t)
		ingest.noErrors(t)
		// The submitter lives outside STUDIO: what it publishes elsewhere never reaches
		// the pipeline's streams.
		st, err := ingest.js.Stream(ctx, schemas.StreamRequests)
		noErr(t, err)
		before, err := st.Info(ctx)
		noErr(t, err)
		noErr(t, rc.nc.Publish(schemas.RequestSubject(tier, task), []byte(`{"job_id":"forged"}`)))
		noErr(t, rc.nc.Flush())
		time.Sleep(200 * time.Millisecond) // a stored message would be there by now
		after, err := st.Info(ctx)
		noErr(t, err)
		if after.State.Msgs != before.State.Msgs {
			t.Errorf("REQUESTS went from %d to %d messages after the submitter published to it", before.State.Msgs, after.State.Msgs)
		}
	})
}

// startProductionServer runs deploy/nats/nats-server.conf with env on a free loopback
// port, alone (no cluster), with its store in a temporary directory.
func startProductionServer(t *testing.T, env map[string]string) *server.Server {
	t.Helper()
	opts := loadNATSConfig(t, "deploy/nats/nats-server.conf", env)
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
	opts.StoreDir, opts.PidFile, opts.ServerName = t.TempDir(), "", "deploy-test"
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return s
}
