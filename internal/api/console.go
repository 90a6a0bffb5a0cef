package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

// consoleSnapshotWait bounds how long GET /v1/vms/{vm}/console without
// follow waits for the agent's snapshot of the console log. The agent
// sends the snapshot as its first chunk at once; an empty or absent log
// sends nothing, and the wait then ends with an empty answer.
const consoleSnapshotWait = 3 * time.Second

// vmConsole serves a VM's serial console through the agent channel.
//
// Without follow it answers the last 64 KiB of the console log once, as
// text/plain (the raw bytes). With ?follow=true it answers a Server-Sent
// Events stream: each "console" event's data is a chunk of raw console
// bytes in standard base64 (console output is not always valid UTF-8);
// the first chunk is the last 64 KiB of the log, later ones new output.
// The stream ends with an "end" event whose data is a JSON object
// {"reason"} when the agent goes away or the reader falls behind, and
// ends silently when the client leaves (the agent is told to stop).
func (a *API) vmConsole(c *gin.Context) {
	id, err := pathID(c, "vm")
	if err != nil {
		a.writeError(c, err)
		return
	}
	follow := false
	switch c.Query("follow") {
	case "", "false":
	case "true":
		follow = true
	default:
		a.writeError(c, invalidArgument("follow must be true or false"))
		return
	}
	tenant := tenantOf(c)
	ctx := c.Request.Context()
	vm, err := a.store.GetVM(ctx, tenant, id)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting vm %s: %w", id, err))
		return
	}
	if vm.ActualState == store.VMDeleted {
		a.writeError(c, &Error{Status: http.StatusConflict, Code: CodeVMDeleted, Message: fmt.Sprintf("vm %s was deleted; it has no console", id)})
		return
	}
	host, err := a.store.GetHost(ctx, tenant, vm.HostID)
	if err != nil {
		a.writeError(c, fmt.Errorf("getting host %s of vm %s: %w", vm.HostID, id, err))
		return
	}
	if !host.Online {
		a.writeError(c, hostOffline(host))
		return
	}
	if a.hub == nil {
		a.writeError(c, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the agent channel is not running on this server"})
		return
	}
	stream, err := a.hub.OpenConsole(ctx, host.AgentID, vm.ID)
	if errors.Is(err, hub.ErrAgentOffline) {
		// The store still says online, but no replica holds a session of
		// the agent (it just disconnected): the same answer as offline.
		a.writeError(c, hostOffline(host))
		return
	}
	if err != nil {
		a.writeError(c, fmt.Errorf("opening console of vm %s: %w", id, err))
		return
	}
	defer stream.Close()
	if follow {
		a.followConsole(c, stream)
		return
	}

	snapshot, err := readSnapshot(ctx, stream, a.streamsDone)
	if err != nil {
		if ctx.Err() == nil {
			a.writeError(c, hostOffline(host))
		}
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", snapshot)
}

// readSnapshot collects a console stream's snapshot: the chunks the agent
// sent before its end-of-snapshot marker, at most the last
// agentproto.MaxConsoleChunkBytes. It returns what it has when the marker
// comes, after consoleSnapshotWait (agents older than the marker), or when
// the server shuts down; an error when ctx ends or the agent goes away.
func readSnapshot(ctx context.Context, stream *hub.ConsoleStream, shutdown <-chan struct{}) ([]byte, error) {
	var snapshot []byte
	add := func(chunk []byte) {
		snapshot = append(snapshot, chunk...)
		if over := len(snapshot) - agentproto.MaxConsoleChunkBytes; over > 0 {
			snapshot = snapshot[over:]
		}
	}
	wait := time.NewTimer(consoleSnapshotWait)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-shutdown:
			return snapshot, nil
		case <-wait.C:
			return snapshot, nil
		case <-stream.Snapshot():
			// Every snapshot chunk was delivered before the marker:
			// take those already waiting, then answer.
			for len(stream.C()) > 0 {
				if chunk, ok := <-stream.C(); ok {
					add(chunk)
				}
			}
			return snapshot, nil
		case chunk, ok := <-stream.C():
			if !ok {
				if err := stream.Err(); err != nil {
					return nil, err
				}
				return snapshot, nil
			}
			add(chunk)
		}
	}
}

// followConsole relays a console stream as Server-Sent Events until the
// client leaves, the server shuts down or the stream ends.
func (a *API) followConsole(c *gin.Context, stream *hub.ConsoleStream) {
	ctx := c.Request.Context()
	sse, err := newSSE(c)
	if err != nil {
		a.log.Warn("console stream ended", logKeyRequestID, requestID(c), logKeyError, err)
		return
	}

	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.streamsDone:
			return
		case chunk, ok := <-stream.C():
			if !ok {
				reason := "the console stream ended"
				if err := stream.Err(); errors.Is(err, hub.ErrLagged) {
					reason = "the reader fell behind the console output; reconnect to resume"
				} else if err != nil {
					reason = "the vm's agent disconnected"
				}
				// The stream closes next; a write error changes nothing.
				if payload, err := json.Marshal(map[string]string{"reason": reason}); err == nil && sse.Event("", "end", payload) == nil {
					_ = sse.Flush()
				}
				return
			}
			if err := sse.Event("", "console", []byte(base64.StdEncoding.EncodeToString(chunk))); err != nil {
				return
			}
			if err := sse.Flush(); err != nil {
				return
			}
		case <-beat.C:
			if err := sse.Comment("keepalive"); err != nil {
				return
			}
		}
	}
}
