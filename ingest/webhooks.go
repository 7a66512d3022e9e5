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
	"sync"
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
func (s *Service) RunWebhooks(ctx context.Context, opener streams.BatchOpener, worker string) error {
	if s.cfg.WebhookSecret == "" || s.index == nil {
		<-ctx.Done() // webhooks are off: nothing can have a callback URL
		return nil
	}
	cons, err := opener.Open(ctx, streams.BatchSpec{
		Stream: schemas.StreamResults, Durable: DurableWebhooks,
		AckWait: 3 * s.cfg.WebhookTimeout, MaxAckPending: 256, MaxDeliver: -1,
		DLQStage: StageWebhooks, Worker: worker,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	client := s.webhookClient()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		// One at a time: a fetch returns as soon as a message is there (a larger batch
		// would wait for the batch to fill), and deliveries run concurrently anyway.
		batch, err := cons.Fetch(ctx, 1, 5*time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.WithError(err).Warn("webhooks: fetch failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
		for _, d := range batch {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.deliverWebhook(context.WithoutCancel(ctx), client, cons, d)
			}()
		}
	}
}

func (s *Service) deliverWebhook(ctx context.Context, client *http.Client, cons *streams.BatchConsumer, d *streams.Delivery) {
	var res schemas.ResultEvent
	if err := json.Unmarshal(d.Data, &res); err != nil || res.JobID == "" || schemas.ValidToken(res.Tenant) != nil {
		if err := cons.DeadLetter(ctx, d, fmt.Errorf("not a result event: %v", err)); err != nil {
			_ = d.Nak(time.Second)
		}
		return
	}
	log := s.log.WithFields(logrus.Fields{"job_id": res.JobID, "tenant": res.Tenant, "stage": "webhooks", "attempt": d.Delivered})
	entry, ok, err := s.index.Get(ctx, res.Tenant, res.User, res.JobID)
	if err != nil {
		log.WithError(err).Warn("webhooks: job index unavailable; retrying")
		_ = d.Nak(s.webhookBackoff(d.Delivered))
		return
	}
	if !ok || entry.CallbackURL == "" {
		_ = d.Ack() // not submitted through this ingest, expired, or no callback
		return
	}
	status, err := s.callWebhook(ctx, client, entry.CallbackURL, &res, d)
	log = log.WithFields(logrus.Fields{"callback_url": entry.CallbackURL, "status_code": status})
	if err == nil {
		log.Info("webhook delivered")
		_ = d.Ack()
		return
	}
	if d.Delivered >= s.cfg.WebhookAttempts {
		log.WithError(err).Warn("webhook failed on its last attempt; dead-lettered")
		if derr := cons.DeadLetter(ctx, d, fmt.Errorf("webhook to %s failed %d times: %w", entry.CallbackURL, d.Delivered, err)); derr != nil {
			_ = d.Nak(s.webhookBackoff(d.Delivered))
		}
		return
	}
	delay := s.webhookBackoff(d.Delivered)
	log.WithError(err).WithField("retry_in", delay.String()).Warn("webhook failed; will retry")
	_ = d.Nak(delay)
}

// callWebhook POSTs the result event, signed; any 2xx is success.
func (s *Service) callWebhook(ctx context.Context, client *http.Client, url string, res *schemas.ResultEvent, d *streams.Delivery) (int, error) {
	body := d.Data
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "studio-webhooks/1")
	req.Header.Set(HeaderEvent, res.Schema)
	req.Header.Set(HeaderDelivery, res.JobID+"."+strconv.Itoa(d.Delivered))
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

func (s *Service) webhookBackoff(delivered int) time.Duration {
	d := s.cfg.WebhookBackoff
	for i := 1; i < delivered && d < s.cfg.WebhookMaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.WebhookMaxBackoff)
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
