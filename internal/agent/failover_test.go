package agent_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
)

// front is one "replica" address in front of the test's hub: a TCP
// relay on loopback (TLS passes through to the hub's listener untouched),
// which can go down, dropping its connections, and come back on the same
// address, as a restarted server does.
type front struct {
	t        *testing.T
	addr     string
	to       string
	accepted atomic.Int32

	mu    sync.Mutex // guards the following
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFront(t *testing.T, to string) *front {
	t.Helper()
	f := &front{t: t, to: to, addr: "127.0.0.1:0"}
	f.up()
	t.Cleanup(f.down)
	return f
}

func (f *front) url() string { return "https://" + f.addr }

// up listens (again) on the front's address.
func (f *front) up() {
	f.t.Helper()
	ln, err := net.Listen("tcp", f.addr)
	require.NoError(f.t, err)
	f.mu.Lock()
	f.ln, f.addr = ln, ln.Addr().String()
	f.mu.Unlock()
	f.wg.Go(func() { f.accept(ln) })
}

func (f *front) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		back, err := net.Dial("tcp", f.to)
		if err != nil {
			_ = c.Close()
			continue
		}
		f.accepted.Add(1)
		f.mu.Lock()
		f.conns = append(f.conns, c, back)
		f.mu.Unlock()
		f.wg.Go(func() { _, _ = io.Copy(back, c); _ = back.Close() })
		f.wg.Go(func() { _, _ = io.Copy(c, back); _ = c.Close() })
	}
}

// down closes the listener and every relayed connection, and waits for
// the relay's goroutines.
func (f *front) down() {
	f.mu.Lock()
	if f.ln != nil {
		_ = f.ln.Close()
		f.ln = nil
	}
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

// An agent given two servers reaches the hub through whichever is up: it
// starts while the first is down, and when the one it uses goes down it
// comes back through the other. The list is the one stored at
// enrollment.
func TestAgentFailsOverBetweenServers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	a, b := newFront(t, u.Host), newFront(t, u.Host)
	a.down()

	ta := e.enroll(time.Hour)
	e.start(ta, func(o *agent.Options) {
		o.Identity.Info.Server = a.url()
		o.Identity.Info.Servers = []string{a.url(), b.url()}
	})
	wait(t, "agent online through b", func() bool { return e.hub.Online(ta.id) && b.accepted.Load() > 0 })
	require.Zero(t, a.accepted.Load())

	a.up()
	b.down()
	wait(t, "agent back through a", func() bool { return a.accepted.Load() > 0 && e.hub.Online(ta.id) })

	p, vm := e.submitVMPlan(ta)
	e.checkRan(ta, p, vm)
}
