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
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Webhook headers.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
	// Receivers recompute it and refuse stale timestamps, which defeats replays.
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

// SignWebhook returns the Studio-Signature value for body at time t.
func SignWebhook(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
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
	log = log.WithFields(logrus.Fields{"callback_url": entry.CallbackURL, "status_code": status})
	if err != nil {
		return fmt.Errorf("webhook to %s: %w", entry.CallbackURL, err)
	}
	log.Info("webhook delivered")
	return nil
}

// callWebhook POSTs the result event, signed; any 2xx is success.
func (s *Service) callWebhook(ctx context.Context, client *http.Client, url string, res *schemas.ResultEvent, m *streams.Msg) (int, error) {
	body := m.Data
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "studio-webhooks/1")
	req.Header.Set(HeaderEvent, res.Schema)
	req.Header.Set(HeaderDelivery, res.JobID+"."+strconv.Itoa(m.Delivered))
	req.Header.Set("Studio-Job-Id", res.JobID)
	req.Header.Set(HeaderSignature, SignWebhook(s.cfg.WebhookSecret, time.Now(), body))
	if res.TraceParent != "" {
		req.Header.Set("traceparent", res.TraceParent)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("callback answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// errPrivateAddress refuses callbacks into the operator's own networks.
var errPrivateAddress = errors.New("callback address is loopback, private or link-local")

// webhookClient connects only to public addresses unless AllowPrivateCallbacks: the
// check runs on the address actually dialled, after DNS, so a name that resolves to an
// internal address is refused too. Redirects are not followed, and no proxy is used.
func (s *Service) webhookClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !s.cfg.AllowPrivateCallbacks {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			ip := ap.Addr().Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
				return fmt.Errorf("%w: %s", errPrivateAddress, ip)
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 5 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
