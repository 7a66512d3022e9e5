package ingest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// specialAddrs has one address in every special-purpose range a webhook must not reach.
var specialAddrs = []string{
	"0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.8.8.8",
	"169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.9", "192.0.2.10", "192.31.196.1",
	"192.52.193.1", "192.88.99.1", "192.168.1.1", "192.175.48.1", "198.18.0.1", "198.19.255.255",
	"198.51.100.7", "203.0.113.9", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
	"::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:0:a00:1", "64:ff9b::a00:1",
	"64:ff9b:1::1", "100::1", "100:0:0:1::1", "2001::1", "2001:2::1", "2001:10::1", "2001:20::1",
	"2001:db8::1", "2002:a00:1::1", "2620:4f:8000::1", "3fff::1", "5f00::1", "fc00::1", "fd12:3456::1",
	"fe80::1", "fec0::1", "ff02::1",
}

// publicAddrs are ordinary unicast addresses, including neighbours of special ranges.
var publicAddrs = []string{
	"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "198.17.255.255", "198.20.0.1",
	"192.0.1.1", "223.255.255.254", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "2003::1",
}

func callbackFor(ip string) string {
	return "http://" + net.JoinHostPort(ip, "8080") + "/hook"
}

func TestCallbackURLsWithSpecialPurposeAddressLiteralsAreRefusedAtSubmission(t *testing.T) {
	img := encodePNG(t, gridImage(2, 2))
	strict := newEnv(t, ingest.Config{WebhookSecret: webhookSecret})
	for _, ip := range specialAddrs {
		r := strict.submit(t, file(img), field("task", "remove-background"), field("callback_url", callbackFor(ip)))
		p := requireProblem(t, r, http.StatusUnprocessableEntity, "invalid_callback_url")
		require.Equal(t, []string{"callback_url"}, fieldsOf(p), ip)
		require.Contains(t, string(r.body), "RFC", "the refusal names the range: %s", ip)
	}
	for _, ip := range publicAddrs {
		r := strict.submit(t, file(img), field("task", "remove-background"), field("callback_url", callbackFor(ip)))
		require.Equal(t, http.StatusAccepted, r.status, "%s: %s", ip, r.body)
	}
	// The development escape hatch lets them through.
	dev := newEnv(t, ingest.Config{WebhookSecret: webhookSecret, AllowPrivateCallbacks: true})
	r := dev.submit(t, file(img), field("task", "remove-background"), field("callback_url", callbackFor("100.64.0.1")))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
}

func TestTheWebhookDialerRefusesSpecialPurposeAddressesAfterResolution(t *testing.T) {
	d := ingest.WebhookDialer(false)
	for _, ip := range specialAddrs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, "9"))
		cancel()
		require.ErrorIs(t, err, ingest.ErrSpecialAddress, ip)
	}
	for _, ip := range publicAddrs {
		// The check a dial runs on the resolved address, without sending a packet.
		require.NoError(t, d.Control("tcp4", net.JoinHostPort(netip.MustParseAddr(ip).Unmap().String(), "443"), nil), ip)
	}
}

func TestANameThatResolvesToASpecialAddressIsRefusedAtDialTime(t *testing.T) {
	// A local listener, and a DNS server that maps names to addresses as an attacker's
	// (rebinding) zone would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	resolver := startDNS(t, map[string]netip.Addr{
		"loopback.attacker.test.": netip.MustParseAddr("127.0.0.1"),
		"cgnat.attacker.test.":    netip.MustParseAddr("100.64.0.1"),
		"bench.attacker.test.":    netip.MustParseAddr("198.18.0.1"),
	})
	tests := []struct {
		name, host   string
		allowPrivate bool
		wantRefused  bool
	}{
		{"a name for 127.0.0.1 is refused", "loopback.attacker.test", false, true},
		{"a name for 100.64.0.1 is refused", "cgnat.attacker.test", false, true},
		{"a name for 198.18.0.1 is refused", "bench.attacker.test", false, true},
		{"a name for 127.0.0.1 connects with the development escape hatch", "loopback.attacker.test", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ingest.WebhookDialer(tt.allowPrivate)
			d.Resolver = resolver
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(tt.host, port))
			if tt.wantRefused {
				require.ErrorIs(t, err, ingest.ErrSpecialAddress)
				return
			}
			require.NoError(t, err)
			c.Close()
		})
	}
}

// startDNS serves A records for names on a local UDP port and returns a resolver that
// asks only it.
func startDNS(t *testing.T, names map[string]netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// Question: labels up to the zero byte, then type and class.
			var name strings.Builder
			i := 12
			for i < len(q) && q[i] != 0 {
				l := int(q[i])
				if i+1+l > len(q) {
					break
				}
				name.Write(q[i+1 : i+1+l])
				name.WriteByte('.')
				i += 1 + l
			}
			end := i + 5
			if end > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[i+1:])
			ip, ok := names[strings.ToLower(name.String())]
			var resp bytes.Buffer
			resp.Write(q[:2])                       // id
			resp.Write([]byte{0x81, 0x80, 0, 1, 0}) // response, recursion available; one question
			if ok && qtype == 1 && ip.Is4() {
				resp.WriteByte(1)
			} else {
				resp.WriteByte(0)
			}
			resp.Write([]byte{0, 0, 0, 0})
			resp.Write(q[12:end])
			if ok && qtype == 1 && ip.Is4() {
				a := ip.As4()
				resp.Write([]byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4})
				resp.Write(a[:])
			}
			_, _ = pc.WriteTo(resp.Bytes(), from)
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func TestWebhookSignaturesArePerTenantAndVerifyDuringARotation(t *testing.T) {
	body := []byte(`{"job_id":"j1"}`)
	now := time.Unix(1_800_000_000, 0)
	keyA := ingest.TenantWebhookSecret("current", "acme")
	keyB := ingest.TenantWebhookSecret("current", "globex")
	require.NotEqual(t, keyA, keyB)
	sigA := ingest.SignWebhook(now, body, keyA)
	require.NotEqual(t, sigA, ingest.SignWebhook(now, body, keyB), "the same body signs differently per tenant")
	require.True(t, ingest.VerifyWebhook(sigA, body, keyA, now.Add(time.Minute), 5*time.Minute))
	require.False(t, ingest.VerifyWebhook(sigA, body, keyB, now, 5*time.Minute), "tenant A's signature is no signature for tenant B")
	require.False(t, ingest.VerifyWebhook(sigA, []byte(`{"job_id":"j2"}`), keyA, now, 5*time.Minute), "the signature covers the body")
	require.False(t, ingest.VerifyWebhook(sigA, body, keyA, now.Add(10*time.Minute), 5*time.Minute), "a replay past the tolerance is refused")

	// During a rotation both the new and the old tenant secret verify.
	oldA := ingest.TenantWebhookSecret("previous", "acme")
	both := ingest.SignWebhook(now, body, keyA, oldA)
	require.True(t, ingest.VerifyWebhook(both, body, keyA, now, 5*time.Minute))
	require.True(t, ingest.VerifyWebhook(both, body, oldA, now, 5*time.Minute))
	require.False(t, ingest.VerifyWebhook(both, body, keyB, now, 5*time.Minute))
}

// syncBuffer is a log destination tests read while the service writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDeliveriesSignPerTenantWithBothSecretsAndLogNoCallbackSecrets(t *testing.T) {
	var logs syncBuffer
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(&logs)
	cfg := webhookConfig()
	cfg.WebhookPreviousSecret = "whsec-old"
	p := newPipelineWithLog(t, cfg, log)
	hook := newReceiver(t, 1) // the first call fails: its error is logged too
	job := p.submitPNG(t, field("callback_url", hook.srv.URL+"/hook?token=s3cr3t-query#frag"))
	p.runWebhooks(t)
	p.runAll()
	p.openAll()
	streamsEventually(t, func() bool { return hook.count() >= 2 }, "webhook not delivered")
	streamsEventually(t, func() bool { return strings.Contains(logs.String(), "webhook delivered") }, "no delivery log line")

	last := hook.get(1)
	var ev schemas.ResultEvent
	require.NoError(t, json.Unmarshal(last.body, &ev))
	require.Equal(t, job.ID, ev.JobID)
	sig := last.header.Get(ingest.HeaderSignature)
	require.Equal(t, 2, strings.Count(sig, "v1="), sig)
	now := time.Now()
	require.True(t, ingest.VerifyWebhook(sig, last.body, ingest.TenantWebhookSecret(webhookSecret, ev.Tenant), now, 5*time.Minute))
	require.True(t, ingest.VerifyWebhook(sig, last.body, ingest.TenantWebhookSecret("whsec-old", ev.Tenant), now, 5*time.Minute))
	require.False(t, ingest.VerifyWebhook(sig, last.body, ingest.TenantWebhookSecret(webhookSecret, ev.Tenant+"x"), now, 5*time.Minute))
	require.False(t, ingest.VerifyWebhook(sig, last.body, webhookSecret, now, 5*time.Minute))

	out := logs.String()
	require.Contains(t, out, hook.srv.URL+"/hook", "the log names the receiver")
	require.NotContains(t, out, "s3cr3t-query", "no query string in any log line")
	require.NotContains(t, out, "frag")
	require.Contains(t, out, "callback answered", "the failed call was logged")
}

func TestTheNATSEntryRefusesSpecialPurposeCallbackLiteralsToo(t *testing.T) {
	e := newEnv(t, ingest.Config{WebhookSecret: webhookSecret})
	e.serveNATS(t)
	nc := e.upstream(t)
	img := encodePNG(t, gridImage(2, 2))
	for _, ip := range []string{"100.64.0.1", "198.18.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "169.254.169.254", "::ffff:127.0.0.1"} {
		res := request(t, nc, "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "callback_url": callbackFor(ip)}, nil)
		require.Equal(t, "422", res.Header.Get(micro.ErrorCodeHeader), "%s: %s", ip, res.Data)
		var p ingest.Problem
		require.NoError(t, json.Unmarshal(res.Data, &p))
		require.Equal(t, "invalid_callback_url", p.Code, ip)
		require.Equal(t, []string{"callback_url"}, fieldsOf(p), ip)
	}
	e.requireNothingKept(t)
}
