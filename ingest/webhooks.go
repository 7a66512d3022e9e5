package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Webhook headers.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>",
	// where key is the tenant's secret (TenantWebhookSecret); during a rotation a second
	// v1 made with the previous secret follows. Receivers accept when any v1 matches and
	// refuse stale timestamps, which defeats replays (see the README, Webhooks).
	HeaderSignature = "Studio-Signature"
	// HeaderEvent names the body's schema (studio.job.result/v1).
	HeaderEvent = "Studio-Event"
	// HeaderDelivery is unique per attempt: "<job id>.<attempt>".
	HeaderDelivery = "Studio-Delivery"
)

// DurableWebhooks is the consumer group on RESULTS that sends webhooks. Being durable,
// results that arrive while no ingest runs are delivered after it starts again.
const DurableWebhooks = "webhooks"

// StageWebhooks names the dead-letter subject studio.dlq.webhooks.
const StageWebhooks schemas.Stage = "webhooks"

// TenantWebhookSecret derives a tenant's webhook signing secret from the configured
// secret: hex(HMAC-SHA256(key=secret, "studio-webhook-secret/v1/" + tenant)). Each
// tenant verifies with its own secret, so one tenant's signature is no signature for
// another; the operator hands each tenant its derived secret, never the configured one.
func TenantWebhookSecret(secret, tenant string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("studio-webhook-secret/v1/"))
	m.Write([]byte(tenant))
	return hex.EncodeToString(m.Sum(nil))
}

// SignWebhook returns the Studio-Signature value for body at time t, signed with each
// of keys in turn (the current tenant secret first, then the previous one while a
// rotation lasts; empty keys are skipped).
func SignWebhook(t time.Time, body []byte, keys ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	out := "t=" + ts
	for _, k := range keys {
		if k == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(k))
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		out += ",v1=" + hex.EncodeToString(m.Sum(nil))
	}
	return out
}

// VerifyWebhook reports whether header (a Studio-Signature value) signs body with key
// and is at most tolerance old (or early): the receiver's side of SignWebhook, in Go.
func VerifyWebhook(header string, body []byte, key string, now time.Time, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// redactURL is raw without userinfo, query and fragment, for log lines and errors:
// callback URLs often carry a token in the query.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// RunWebhooks delivers every final job state that has a callback URL, from the durable
// consumer group "webhooks" on RESULTS, until ctx is cancelled. Failed calls are retried
// with exponential backoff (Config.WebhookBackoff, doubling, capped); after
// Config.WebhookAttempts the result goes to studio.dlq.webhooks. Several ingest
// processes share the work.
func (s *Service) RunWebhooks(ctx context.Context, engine streams.Engine, worker string, obs streams.Observer) error {
	if s.cfg.WebhookSecret == "" || s.index == nil {
		<-ctx.Done() // webhooks are off: nothing can have a callback URL
		return nil
	}
	client := s.webhookClient()
	r, err := engine.NewRunner(ctx, streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		return nil, s.deliverWebhook(ctx, client, m)
	}), streams.RunnerConfig{
		Stage: StageWebhooks, Worker: worker, Observer: obs,
		Spec: streams.ConsumerSpec{
			Stream: schemas.StreamResults, Durable: DurableWebhooks, Description: "sends webhooks for final job states",
			AckWait: 3 * s.cfg.WebhookTimeout, MaxAckPending: 256, MaxDeliver: s.cfg.WebhookAttempts,
		},
		// One message per batch: a batch would wait to fill, and calls run concurrently.
		Concurrency: 16, MaxBatch: 1,
		BackoffBase: s.cfg.WebhookBackoff, BackoffMax: s.cfg.WebhookMaxBackoff,
		Log: s.log,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return r.Run(ctx)
}

// deliverWebhook calls the job's callback URL with its result event, if it has one. An
// error is retried by the runner (a message that is not a result event fails for good).
func (s *Service) deliverWebhook(ctx context.Context, client *http.Client, m *streams.Msg) error {
	var res schemas.ResultEvent
	if err := json.Unmarshal(m.Data, &res); err != nil || res.JobID == "" || schemas.ValidToken(res.Tenant) != nil {
		return streams.Permanent(fmt.Errorf("not a result event: %v", err))
	}
	log := s.log.WithFields(logrus.Fields{"job_id": res.JobID, "tenant": res.Tenant, "stage": "webhooks", "attempt": m.Delivered})
	entry, ok, err := s.index.Get(ctx, res.Tenant, res.User, res.JobID)
	if err != nil {
		return fmt.Errorf("webhooks: job index unavailable: %w", err)
	}
	if !ok || entry.CallbackURL == "" {
		return nil // not submitted through this ingest, expired, or no callback
	}
	status, err := s.callWebhook(ctx, client, entry.CallbackURL, &res, m)
	log = log.WithFields(logrus.Fields{"callback_url": redactURL(entry.CallbackURL), "status_code": status})
	if err != nil {
		return fmt.Errorf("webhook to %s: %w", redactURL(entry.CallbackURL), err)
	}
	log.Info("webhook delivered")
	return nil
}

// callWebhook POSTs the result event, signed; any 2xx is success.
func (s *Service) callWebhook(ctx context.Context, client *http.Client, target string, res *schemas.ResultEvent, m *streams.Msg) (int, error) {
	body := m.Data
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("callback URL cannot be requested")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "studio-webhooks/1")
	req.Header.Set(HeaderEvent, res.Schema)
	req.Header.Set(HeaderDelivery, res.JobID+"."+strconv.Itoa(m.Delivered))
	req.Header.Set("Studio-Job-Id", res.JobID)
	req.Header.Set(HeaderSignature, SignWebhook(time.Now(), body,
		TenantWebhookSecret(s.cfg.WebhookSecret, res.Tenant), s.previousTenantSecret(res.Tenant)))
	if res.TraceParent != "" {
		req.Header.Set("traceparent", res.TraceParent)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL) // the error reaches logs and the DLQ reason
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("callback answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// previousTenantSecret is the tenant's secret under Config.WebhookPreviousSecret, or ""
// when no rotation is under way.
func (s *Service) previousTenantSecret(tenant string) string {
	if s.cfg.WebhookPreviousSecret == "" {
		return ""
	}
	return TenantWebhookSecret(s.cfg.WebhookPreviousSecret, tenant)
}

// webhookClient connects only to public addresses unless AllowPrivateCallbacks (see
// WebhookDialer: the check runs on the address actually dialled, after DNS). Redirects
// are not followed, and no proxy is used.
func (s *Service) webhookClient() *http.Client {
	dialer := WebhookDialer(s.cfg.AllowPrivateCallbacks)
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 5 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
