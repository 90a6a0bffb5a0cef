package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/google/uuid"
)

// Error codes of the VM console route.
const (
	// CodeHostOffline: the VM's host has no agent connected right now.
	CodeHostOffline = "host_offline"
	// CodeVMDeleted: the VM was deleted and has no console any more.
	CodeVMDeleted = "vm_deleted"
)

// maxConsoleBytes bounds the one-shot console answer: the server sends
// the last 64 KiB of the log, so four times that is a broken server.
const maxConsoleBytes = 256 << 10

// consoleReplayWindow is how much delivered output FollowConsole remembers to
// recognise the replay a reconnect starts with: the server's snapshot is
// the last 64 KiB of the log.
const consoleReplayWindow = 64 << 10

// Console returns the last 64 KiB of a VM's serial console log once (the
// raw bytes; empty when the VM wrote nothing yet). A VM whose host is
// offline answers ErrConflict with code CodeHostOffline.
func (c *Client) Console(ctx context.Context, vm uuid.UUID) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	path := "/v1/vms/" + vm.String() + "/console"
	req, err := c.newRequest(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.send(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("reading console of vm %s: %w", vm, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("reading console of vm %s: %w", vm, decodeError(resp))
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxConsoleBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading console of vm %s: %w", vm, ctx.Err())
		}
		return nil, fmt.Errorf("reading console of vm %s: %w: %w", vm, ErrUnreachable, err)
	}
	if len(out) > maxConsoleBytes {
		return nil, fmt.Errorf("reading console of vm %s: %w: more than %d bytes", vm, ErrInvalidResponse, maxConsoleBytes)
	}
	return out, nil
}

// FollowConsole calls fn with the output of a VM's serial console: first
// the last 64 KiB of its log, then new output as the guest writes it,
// until ctx ends (ctx.Err()), fn fails (fn's error as is) or the server
// refuses the request for good (the VM was deleted or does not exist).
// Chunks are raw bytes, not lines, and may split a line or a UTF-8
// sequence; fn must not keep the slice.
//
// A console has no natural end, so every interruption is resumed with
// backoff: a dropped connection, an "end" event (the agent went away or
// this reader fell behind) and a host that is offline for now. Each
// reconnect starts with the log's last 64 KiB again; the part of it that
// was already delivered is recognised and skipped, so output is not
// repeated unless more than 64 KiB was missed or the guest repeats itself
// exactly across the gap.
func (c *Client) FollowConsole(ctx context.Context, vm uuid.UUID, fn func(chunk []byte) error) error {
	path := "/v1/vms/" + vm.String() + "/console"
	var seen []byte // the tail of what fn got, to skip a reconnect's replay
	reconnected := false
	err := c.resume(ctx, path, func(ctx context.Context) (bool, error) {
		resp, poke, cancel, err := c.openStream(ctx, path, url.Values{"follow": {"true"}}, "")
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Code == CodeHostOffline {
				// The agent may come back: keep trying, like a dropped
				// connection.
				return false, transientError{err}
			}
			return false, err
		}
		defer cancel()
		defer resp.Body.Close()
		first := reconnected
		reconnected = true
		progressed := false
		dec := newSSEDecoder(resp.Body, poke)
		for {
			ev, err := dec.Next()
			if err != nil {
				return progressed, streamEnd(path, err)
			}
			progressed = true
			switch ev.Type {
			case "end":
				return true, fmt.Errorf("reading stream %s: %w: %s", path, ErrUnreachable, bytes.TrimSpace(ev.Data))
			case "console":
			default:
				continue // event types of a newer server
			}
			chunk, err := base64.StdEncoding.DecodeString(string(ev.Data))
			if err != nil {
				return progressed, fmt.Errorf("decoding console chunk of vm %s: %w: %w", vm, ErrInvalidResponse, err)
			}
			if first {
				// The first chunk after a reconnect is the log's tail
				// again: deliver only what follows what fn already has.
				chunk = chunk[replayOverlap(seen, chunk):]
				first = false
			}
			if len(chunk) == 0 {
				continue
			}
			if err := fn(chunk); err != nil {
				return true, handlerError{err}
			}
			seen = append(seen, chunk...)
			if over := len(seen) - consoleReplayWindow; over > 0 {
				seen = append(seen[:0], seen[over:]...)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("following console of vm %s: %w", vm, err)
	}
	return nil
}

// replayOverlap returns the length of the longest prefix of next that is
// a suffix of seen: how much of a console snapshot was delivered already.
// It runs the Knuth-Morris-Pratt automaton of next's prefix over seen, so
// a 64 KiB window costs linear time, not quadratic.
func replayOverlap(seen, next []byte) int {
	pat := next[:min(len(next), len(seen))]
	if len(pat) == 0 {
		return 0
	}
	fail := make([]int, len(pat))
	for i, k := 1, 0; i < len(pat); i++ {
		for k > 0 && pat[i] != pat[k] {
			k = fail[k-1]
		}
		if pat[i] == pat[k] {
			k++
		}
		fail[i] = k
	}
	q := 0
	for _, b := range seen {
		if q == len(pat) {
			q = fail[q-1]
		}
		for q > 0 && b != pat[q] {
			q = fail[q-1]
		}
		if b == pat[q] {
			q++
		}
	}
	return q
}
