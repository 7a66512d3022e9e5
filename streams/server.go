package streams

import (
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures an in-process nats-server with JetStream.
type EmbeddedConfig struct {
	// DataDir holds JetStream's file store (DataDir/jetstream).
	DataDir string
	// Listen is host:port for NATS clients outside this process; empty means in-process
	// connections only. Use port -1 for a random free port.
	Listen string
	// HTTPListen enables the monitoring endpoint (/varz, /jsz) on host:port; KEDA's
	// nats-jetstream scaler reads consumer lag from it. Empty disables it.
	HTTPListen string
	// MaxStore bounds JetStream file storage in bytes (0 = server default).
	MaxStore int64
}

// Embedded is a running in-process nats-server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream and waits until it accepts
// connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("streams: embedded server needs a data directory (--data-dir)")
	}
	opts := &server.Options{
		ServerName:         "studio-embedded",
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, "jetstream"),
		JetStreamMaxStore:  cfg.MaxStore,
		NoSigs:             true,
		DontListen:         cfg.Listen == "",
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("streams: --nats-listen %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.HTTPListen != "" {
		host, port, err := splitHostPort(cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("streams: --nats-monitor %q: %w", cfg.HTTPListen, err)
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("streams: configure embedded nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("streams: embedded nats-server not ready after 30s (is %s in use, or %s not writable?)", cfg.Listen, cfg.DataDir)
	}
	return &Embedded{srv: srv}, nil
}

// Connect opens a client connection inside the process.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.srv), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("streams: connect to embedded server: %w", err)
	}
	return nc, nil
}

// ClientURL is the URL other processes use, or "" when the server does not listen.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// MonitorURL is the monitoring endpoint's base URL, or "" when disabled.
func (e *Embedded) MonitorURL() string {
	if a := e.srv.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Shutdown stops the server and waits for it to exit.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Dial connects to an external NATS server or cluster. url may list several servers
// separated by commas; creds is an optional .creds file. When url names a user, replies
// to this connection arrive under InboxPrefix(url), so that a server can let each role
// read only its own replies (deploy/nats/nats-server.conf). A server that stops
// answering pings for about 20 s is left for another of url's servers.
func Dial(url, name, creds string) (*nats.Conn, error) {
	// Pings every 5 s, 3 unanswered: a server that is paused or cut off (its TCP
	// connection still open) is left for another in about 20 s, not the client's
	// default 4 minutes during which every request on the connection hangs.
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.PingInterval(5 * time.Second), nats.MaxPingsOutstanding(3)}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if p := InboxPrefix(url); p != "_INBOX" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("streams: connect to NATS at %s: %w (check --nats-url and that the server is up)", url, err)
	}
	return nc, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", p)
	}
	return host, port, nil
}

// InboxPrefix returns the reply-subject prefix of a connection to url: "_INBOX.<user>"
// when the first server URL names a user that is a valid subject token, else "_INBOX".
// JetStream API answers, pull-consumer deliveries and KV watches all arrive there; a
// production server allows each role to subscribe to its own prefix only, so no role
// reads another's replies (job records, user records, objects).
func InboxPrefix(url string) string {
	first, _, _ := strings.Cut(url, ",")
	u, err := neturl.Parse(strings.TrimSpace(first))
	if err != nil || u.User == nil {
		return "_INBOX"
	}
	name := u.User.Username()
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return "_INBOX"
	}
	return "_INBOX." + name
}
