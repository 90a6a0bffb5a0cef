package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// ConsoleLogName is the serial console log of a VM, in
// <runtime-dir>/<vm-id>/. Both providers write it there: Cloud Hypervisor's
// VMM for a real guest, the sim provider for its synthetic one.
const ConsoleLogName = "console.log"

// Console tail tuning.
const (
	// ConsoleSnapshotBytes is how much of the end of the log a new tail
	// sends first; it fits in one console_data chunk, so the server can
	// answer a one-shot read with the first chunk alone.
	ConsoleSnapshotBytes = agentproto.MaxConsoleChunkBytes
	// consoleChunkBytes bounds one follow chunk: small enough that a
	// chatty guest interleaves with results and logs on the channel.
	consoleChunkBytes = 16 << 10
	// consoleRate and consoleBurst bound the bytes per second one tail
	// sends, so a guest flooding its console cannot crowd the channel.
	consoleRate  = 256 << 10
	consoleBurst = agentproto.MaxConsoleChunkBytes
	// consolePoll is how often a tail looks for new output (or for the
	// log to appear, when the VM has not booted yet).
	consolePoll = 200 * time.Millisecond
	// maxConsoleTails bounds the concurrent tails of one session.
	maxConsoleTails = 8
)

// consoleTails runs the console tails of one session. Each tail is a
// goroutine owned by the session: it ends on console_stop, when the
// session ends (ctx), or when sending fails; wait blocks until all ended.
type consoleTails struct {
	dir  string
	send func(ctx context.Context, m agentproto.ConsoleData) error

	wg     sync.WaitGroup
	mu     sync.Mutex // guards the following
	m      map[uuid.UUID]context.CancelFunc
	closed bool // set by wait: no tail starts after it
	// snapshotMarker: the server takes the end-of-snapshot marker (its
	// hello_ack said so).
	snapshotMarker bool
}

func newConsoleTails(dir string, send func(context.Context, agentproto.ConsoleData) error) *consoleTails {
	return &consoleTails{dir: dir, send: send, m: make(map[uuid.UUID]context.CancelFunc)}
}

// serverCapability sets what the tails may send from the server's
// hello_ack capability version.
func (t *consoleTails) serverCapability(v int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snapshotMarker = v >= agentproto.CapabilityConsoleSnapshotDone
}

// start begins a tail; a duplicate stream id or one tail too many is
// refused with an error the caller logs (the server's reader then times
// out or the operator retries).
func (t *consoleTails) start(ctx context.Context, m agentproto.ConsoleStart) error {
	if t.dir == "" {
		return errors.New("starting console tail: this agent has no runtime directory")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("starting console tail %s: the session is ending", m.StreamID)
	}
	if _, dup := t.m[m.StreamID]; dup {
		return fmt.Errorf("starting console tail %s: stream already open", m.StreamID)
	}
	if len(t.m) >= maxConsoleTails {
		return fmt.Errorf("starting console tail %s: %d tails already open", m.StreamID, maxConsoleTails)
	}
	tctx, cancel := context.WithCancel(ctx)
	t.m[m.StreamID] = cancel
	path := filepath.Join(t.dir, m.VMID.String(), ConsoleLogName)
	marker := t.snapshotMarker
	t.wg.Go(func() {
		defer t.stop(m.StreamID)
		tail := &consoleTail{path: path, vm: m.VMID, stream: m.StreamID, send: t.send,
			lim: rate.NewLimiter(consoleRate, consoleBurst), marker: marker}
		_ = tail.run(tctx)
	})
	return nil
}

// stop ends a tail; an unknown stream id is ignored (it ended already).
func (t *consoleTails) stop(stream uuid.UUID) {
	t.mu.Lock()
	cancel := t.m[stream]
	delete(t.m, stream)
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// wait blocks until every tail ended; the session cancels their context
// first. No tail starts afterwards.
func (t *consoleTails) wait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

// consoleTail follows one console log.
type consoleTail struct {
	path       string
	vm, stream uuid.UUID
	send       func(ctx context.Context, m agentproto.ConsoleData) error
	lim        *rate.Limiter
	// marker: the server takes the end-of-snapshot marker.
	marker bool

	f   *os.File
	off int64
}

// run sends the snapshot and the marker that ends it, then new output,
// until ctx ends or a send fails. A log that does not exist yet is waited
// for (its last bytes are sent when it appears); a log that is truncated
// or replaced (the VM was re-created) is followed from its start.
func (c *consoleTail) run(ctx context.Context) error {
	defer func() {
		if c.f != nil {
			c.f.Close()
		}
	}()
	if err := c.step(ctx, true); err != nil {
		return err
	}
	if c.marker {
		if err := c.send(ctx, agentproto.ConsoleData{VMID: c.vm, StreamID: c.stream, SnapshotDone: true}); err != nil {
			return err
		}
	}
	snapshot := c.f == nil
	tick := time.NewTicker(consolePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := c.step(ctx, snapshot); err != nil {
			return err
		}
		if c.f != nil {
			snapshot = false
		}
	}
}

// step opens or re-opens the log as needed and sends what is new. The
// first successful open sends the last ConsoleSnapshotBytes only.
func (c *consoleTail) step(ctx context.Context, snapshot bool) error {
	if err := c.reopenIfReplaced(ctx); err != nil {
		return err
	}
	if c.f == nil {
		f, err := os.Open(c.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("opening console log %s: %w", c.path, err)
		}
		c.f, c.off = f, 0
		if snapshot {
			st, err := f.Stat()
			if err != nil {
				return fmt.Errorf("reading console log %s: %w", c.path, err)
			}
			c.off = max(0, st.Size()-ConsoleSnapshotBytes)
			return c.sendFrom(ctx, ConsoleSnapshotBytes)
		}
	}
	return c.sendFrom(ctx, consoleChunkBytes)
}

// reopenIfReplaced drops the open file when the path now names another
// file, and rewinds when the file shrank. A replaced file is read to its
// end first, and one that was moved away is followed until the new one
// appears: the Cloud Hypervisor provider moves the log aside
// (console.log.1) just before the VMM truncates it at a boot or reboot,
// and the guest's last lines land in the old file before the VMM opens
// the new one. The next step then follows the new file from its start.
func (c *consoleTail) reopenIfReplaced(ctx context.Context) error {
	if c.f == nil {
		return nil
	}
	cur, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("reading console log %s: %w", c.path, err)
	}
	now, err := os.Stat(c.path)
	if errors.Is(err, os.ErrNotExist) {
		// Moved aside and not replaced yet: the VMM still writes to it
		// until it opens the new file.
		return nil
	}
	if err != nil || !os.SameFile(cur, now) {
		if cur.Size() >= c.off {
			if err := c.sendFrom(ctx, consoleChunkBytes); err != nil {
				return err
			}
		}
		if err := c.sendMissed(ctx, cur); err != nil {
			return err
		}
		c.f.Close()
		c.f = nil
		return nil
	}
	if cur.Size() < c.off {
		c.off = 0
	}
	return nil
}

// consoleRotations is how far sendMissed looks for rotated logs
// (console.log.1, .2, ...); the provider keeps fewer.
const consoleRotations = 8

// sendMissed sends, oldest first, the whole of every log rotated after
// old, the file just finished: a VM that started and rebooted between two
// polls had a log that was moved aside before the tail ever saw it.
func (c *consoleTail) sendMissed(ctx context.Context, old os.FileInfo) error {
	at := 0
	for i := 1; i <= consoleRotations && at == 0; i++ {
		if st, err := os.Stat(fmt.Sprintf("%s.%d", c.path, i)); err == nil && os.SameFile(st, old) {
			at = i
		}
	}
	cur, off := c.f, c.off
	defer func() { c.f, c.off = cur, off }()
	for i := at - 1; i >= 1; i-- {
		f, err := os.Open(fmt.Sprintf("%s.%d", c.path, i))
		if err != nil {
			continue // rotated away meanwhile
		}
		c.f, c.off = f, 0
		err = c.sendFrom(ctx, consoleChunkBytes)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// sendFrom sends everything from c.off to the end of the file in chunks of
// at most chunk bytes, paced by the rate limiter.
func (c *consoleTail) sendFrom(ctx context.Context, chunk int) error {
	buf := make([]byte, chunk)
	for {
		n, err := c.f.ReadAt(buf, c.off)
		if n > 0 {
			if werr := c.lim.WaitN(ctx, n); werr != nil {
				return werr
			}
			data := make([]byte, n)
			copy(data, buf[:n])
			if serr := c.send(ctx, agentproto.ConsoleData{VMID: c.vm, StreamID: c.stream, Data: data}); serr != nil {
				return serr
			}
			c.off += int64(n)
		}
		if errors.Is(err, io.EOF) || (err == nil && n < chunk) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading console log %s: %w", c.path, err)
		}
	}
}
