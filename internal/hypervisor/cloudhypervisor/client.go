package cloudhypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// apiBase is the API's base URL. The host is never resolved (every
// connection dials the VM's Unix socket) but the VMM routes on the path
// prefix, and "localhost" is the server the API document names.
const apiBase = "http://localhost/api/v1"

// maxErrorBody bounds how much of an error answer is quoted in errors.
const maxErrorBody = 4 << 10

// APIError is a non-2xx answer from the VMM, quoted so the operator sees
// what the VMM said.
type APIError struct {
	Method string
	Path   string
	Status int
	Body   string
	// Messages is the VMM's error chain, top first, when the body is the
	// JSON array of strings Cloud Hypervisor answers errors with
	// (error_response in vmm/src/api/http/mod.rs), e.g. ["Error from
	// API", "The VM info is not available", "VM is not created"].
	Messages []string
}

func (e *APIError) Error() string {
	msg := strings.Join(e.Messages, ": ")
	if msg == "" {
		msg = strings.TrimSpace(e.Body)
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("vmm answered %s %s with %d: %s", e.Method, e.Path, e.Status, msg)
}

// Reason is what the VMM said, without the HTTP framing: the error chain
// joined, or the body.
func (e *APIError) Reason() string {
	if len(e.Messages) > 0 {
		return strings.Join(e.Messages, ": ")
	}
	if b := strings.TrimSpace(e.Body); b != "" {
		return b
	}
	return http.StatusText(e.Status)
}

func newAPIError(method, path string, status int, body []byte) *APIError {
	ae := &APIError{Method: method, Path: path, Status: status, Body: string(body)}
	var msgs []string
	if json.Unmarshal(body, &msgs) == nil {
		ae.Messages = msgs
	}
	return ae
}

// statusOf returns the HTTP status of an APIError, or 0.
func statusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// notCreatedMarks are how the VMM says it holds no VM: VmError's Display
// ("VM is not created", "VM config is missing") and, in releases that
// printed errors with Debug, the variant names.
var notCreatedMarks = []string{"vm is not created", "vm config is missing", "vmnotcreated", "vmmissingconfig"}

// isNotCreated reports whether err is the VMM saying it holds no VM. The
// API document says 404; Cloud Hypervisor v48 to v52 answer 500 with the
// error chain (the handlers call error_response(e,
// StatusCode::InternalServerError)), and v53 maps VmNotCreated and
// VmMissingConfig to 404 (api_error_status_code in mod.rs). Both are
// accepted.
func isNotCreated(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Status {
	case http.StatusNotFound:
		return true
	case http.StatusInternalServerError:
		msgs := ae.Messages
		if len(msgs) == 0 {
			msgs = []string{ae.Body}
		}
		for _, m := range msgs {
			m = strings.ToLower(m)
			for _, mark := range notCreatedMarks {
				if strings.Contains(m, mark) {
					return true
				}
			}
		}
	}
	return false
}

// client talks to one VMM's API socket.
type client struct {
	socket string
	hc     *http.Client
}

// newClient returns a client for the socket. Keep-alives are off: calls are
// rare and a kept connection would pin a goroutine per VM for nothing.
func newClient(socket string, timeout time.Duration) *client {
	dialer := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: timeout,
	}
	return &client{socket: socket, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// call sends one request; in and out may be nil.
func (c *client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s body: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, apiBase+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if out != nil {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s %s on %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return newAPIError(method, path, resp.StatusCode, msg)
	}
	// Success is 204, or 200 (vmm.shutdown answers 200 where the document
	// says 204): any 2xx will do, and a body nobody asked for is drained.
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("decoding %s %s answer: %w", method, path, err)
	}
	return nil
}

func (c *client) put(ctx context.Context, path string, in any) error {
	return c.call(ctx, http.MethodPut, path, in, nil)
}

// pingResponse is VmmPingResponse.
type pingResponse struct {
	Version      string `json:"version"`
	BuildVersion string `json:"build_version,omitempty"`
	PID          int    `json:"pid,omitempty"`
}

func (c *client) ping(ctx context.Context) (pingResponse, error) {
	var pr pingResponse
	err := c.call(ctx, http.MethodGet, "/vmm.ping", nil, &pr)
	return pr, err
}

// vmInfo is the part of VmInfo the provider reads.
type vmInfo struct {
	State string `json:"state"`
}

// Cloud Hypervisor VM states (VmState in the API document).
const (
	chCreated    = "Created"
	chRunning    = "Running"
	chShutdown   = "Shutdown"
	chPaused     = "Paused"
	chBreakPoint = "BreakPoint"
)

func (c *client) info(ctx context.Context) (vmInfo, error) {
	var vi vmInfo
	err := c.call(ctx, http.MethodGet, "/vm.info", nil, &vi)
	return vi, err
}

func (c *client) close() { c.hc.CloseIdleConnections() }
