// Package streamstest starts a real embedded JetStream server for tests.
package streamstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/streams"
)

// Server is a provisioned embedded server with one client connection.
type Server struct {
	Embedded *streams.Embedded
	NC       *nats.Conn
	JS       jetstream.JetStream
	DataDir  string
}

// Start runs an embedded server on a random loopback port with file storage in a
// temporary directory, provisions the topology (the pipeline streams of
// processors.Stages included) and shuts everything down at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect("test")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topology.Provision(ctx, js, streams.DefaultTopology(1)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return &Server{Embedded: e, NC: nc, JS: js, DataDir: dir}
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within "+timeout.String()+": "+msg, args...)
}

// Replicas returns n independent JetStream clients of s, each on its own connection,
// standing in for n replicas of a process (the first is s.JS).
func (s *Server) Replicas(t testing.TB, n int) []jetstream.JetStream {
	t.Helper()
	out := []jetstream.JetStream{s.JS}
	for len(out) < n {
		nc, err := s.Embedded.Connect("replica")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, js)
	}
	return out
}

// Cluster is n embedded JetStream servers routed into one cluster on loopback, with the
// topology provisioned at n replicas and one client connection per node.
type Cluster struct {
	Servers []*server.Server
	// NC and JS are the connections and JetStream clients of each node, in order.
	NC []*nats.Conn
	JS []jetstream.JetStream

	opts []*server.Options
}

// Restart shuts node i down, as a crash would leave it (its store kept), and starts it
// again on the same ports and store; the node's client connection reconnects.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
	srv, err := server.NewServer(c.opts[i])
	if err != nil {
		t.Fatalf("restart cluster node %d: %v", i, err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatalf("cluster node %d did not restart", i)
	}
	c.Servers[i] = srv
}

// StreamLeader returns the index of the node leading stream name, waiting up to 30 s
// for one to be elected.
func (c *Cluster) StreamLeader(t testing.TB, name string) int {
	t.Helper()
	leader := -1
	Eventually(t, 30*time.Second, func() bool {
		for _, js := range c.JS {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := js.Stream(ctx, name)
			cancel()
			if err != nil || st.CachedInfo().Cluster == nil {
				continue
			}
			for i, srv := range c.Servers {
				if srv.Name() == st.CachedInfo().Cluster.Leader {
					leader = i
					return true
				}
			}
		}
		return false
	}, "stream %s has no leader", name)
	return leader
}

// StartCluster starts n servers (random ports, file storage under t.TempDir()), waits
// until JetStream has a meta leader, provisions the topology with n replicas and shuts
// everything down at cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := StartClusterNodes(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	Eventually(t, 30*time.Second, func() bool {
		// A request made before there is a leader gets no answer: ask with a short deadline.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := c.JS[0].AccountInfo(ctx)
		return err == nil
	}, "the cluster has no JetStream meta leader")
	top := streams.DefaultTopology(n)
	if err := topology.Provision(ctx, c.JS[0], top); err != nil {
		t.Fatalf("provision the cluster: %v", err)
	}
	return c
}

// URLs returns the client URLs of every node, comma-separated, as --nats-url takes them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, srv := range c.Servers {
		urls = append(urls, srv.ClientURL())
	}
	return strings.Join(urls, ",")
}

// StartClusterNodes starts n servers like StartCluster and connects to each, but
// returns as soon as they accept connections: JetStream has no meta leader yet and
// nothing is provisioned, as when a whole deployment starts at once.
func StartClusterNodes(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	// A clustered JetStream server needs its routes at start, so the route ports are
	// chosen first.
	ports := freePorts(t, n)
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	for i := range n {
		opts := &server.Options{
			ServerName:         fmt.Sprintf("n%d", i),
			Host:               "127.0.0.1",
			Port:               -1,
			JetStream:          true,
			StoreDir:           t.TempDir(),
			JetStreamMaxMemory: 256 << 20,
			MaxPayload:         8 << 20,
			NoSigs:             true,
			NoLog:              true,
			Cluster:            server.ClusterOpts{Name: "studio-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:             routes,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("cluster node %d: %v", i, err)
		}
		c.opts = append(c.opts, opts)
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		c.Servers = append(c.Servers, srv)
	}
	for i, srv := range c.Servers {
		if !srv.ReadyForConnections(30 * time.Second) {
			t.Fatalf("cluster node %d did not start", i)
		}
		c.opts[i].Port = srv.Addr().(*net.TCPAddr).Port // a restart keeps the address
	}
	for i, srv := range c.Servers {
		nc, err := nats.Connect(srv.ClientURL(), nats.Name(fmt.Sprintf("test-n%d", i)), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatalf("connect to node %d: %v", i, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		c.NC, c.JS = append(c.NC, nc), append(c.JS, js)
	}
	return c
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}
