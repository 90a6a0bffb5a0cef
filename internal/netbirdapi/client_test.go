package netbirdapi

import (
	"bytes"
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/netbirdapi/nbtest"
)

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

func withLogs(buf *syncBuffer) func(*Options) {
	return func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// newTestClient returns a client of the stand-in s that records the
// retry delays instead of sleeping them: tests assert on the schedule
// without waiting it out.
func newTestClient(t *testing.T, s *nbtest.Server, mod func(*Options)) (*Client, *[]time.Duration) {
	t.Helper()
	o := Options{BaseURL: s.URL(), Token: nbtest.Token, MaxRetries: 3}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	require.NoError(t, err)
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.wait = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return nil
	}
	return c, waits
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no base", Options{Token: "x"}},
		{"not http", Options{BaseURL: "ftp://nb.example", Token: "x"}},
		{"no host", Options{BaseURL: "https://", Token: "x"}},
		{"query", Options{BaseURL: "https://nb.example?a=b", Token: "x"}},
		{"credentials", Options{BaseURL: "https://u:p@nb.example", Token: "x"}},
		{"no token", Options{BaseURL: "https://nb.example"}},
		{"token with newline", Options{BaseURL: "https://nb.example", Token: "a\nb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.o)
			require.ErrorIs(t, err, ErrConfig)
		})
	}
}

func TestCreateSetupKey(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	var logs syncBuffer
	c, _ := newTestClient(t, s, withLogs(&logs))
	before := time.Now().Truncate(time.Second)
	key, err := c.CreateSetupKey(context.Background(), CreateSetupKeyRequest{
		Name: "nkudo-site-a-tok1", Type: SetupKeyOneOff, ExpiresIn: 86400, AutoGroups: []string{"grp-edge"}, UsageLimit: 1,
	})
	require.NoError(t, err)
	require.Equal(t, "sk-1", key.ID)
	require.Equal(t, "A616097E-FCF0-48FA-9354-000000000001", key.Key)
	require.Equal(t, []string{"grp-edge"}, key.AutoGroups)
	require.Equal(t, 1, key.UsageLimit)
	require.True(t, key.Valid)
	require.WithinRange(t, key.Expires, before.Add(24*time.Hour), time.Now().Add(24*time.Hour))
	require.Equal(t, []map[string]any{{
		"name": "nkudo-site-a-tok1", "type": "one-off", "expires_in": 86400.0, "auto_groups": []any{"grp-edge"},
		"usage_limit": 1.0, "ephemeral": false, "allow_extra_dns_labels": false,
	}}, s.Bodies("POST /api/setup-keys"))

	// Neither the token nor the plaintext key reach the logs, even when
	// the key object itself is logged.
	slog.New(slog.NewTextHandler(&logs, nil)).Info("minted", "key", key)
	require.Contains(t, logs.String(), "POST")
	require.NotContains(t, logs.String(), nbtest.Token)
	require.NotContains(t, logs.String(), key.Key)

	// A nil group list is sent as the required empty array.
	_, err = c.CreateSetupKey(context.Background(), CreateSetupKeyRequest{Name: "n", Type: SetupKeyOneOff, ExpiresIn: 86400, UsageLimit: 1})
	require.NoError(t, err)
}

func TestRevokeAndDeleteSetupKey(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	c, _ := newTestClient(t, s, nil)
	ctx := context.Background()
	key, err := c.CreateSetupKey(ctx, CreateSetupKeyRequest{Name: "k", Type: SetupKeyOneOff, ExpiresIn: 86400, AutoGroups: []string{"grp-edge", "grp-site-a"}, UsageLimit: 1})
	require.NoError(t, err)

	require.NoError(t, c.RevokeSetupKey(ctx, key.ID))
	// The PUT carries the full SetupKeyRequest: revoked plus the key's
	// unchanged groups.
	require.Equal(t, []map[string]any{{"revoked": true, "auto_groups": []any{"grp-edge", "grp-site-a"}}}, s.Bodies("PUT /api/setup-keys/{keyId}"))
	got, err := c.GetSetupKey(ctx, key.ID)
	require.NoError(t, err)
	require.True(t, got.Revoked)
	require.Equal(t, "revoked", got.State)
	require.NotEqual(t, key.Key, got.Key, "read answers mask the key")

	require.NoError(t, c.DeleteSetupKey(ctx, key.ID))
	require.ErrorIs(t, c.DeleteSetupKey(ctx, key.ID), ErrNotFound)
	require.ErrorIs(t, c.RevokeSetupKey(ctx, key.ID), ErrNotFound)
	require.ErrorIs(t, c.RevokeSetupKey(ctx, ""), ErrInvalid)
	require.ErrorIs(t, c.DeletePeer(ctx, " "), ErrInvalid)
}

func TestPeersAndGroups(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	c, _ := newTestClient(t, s, nil)
	ctx := context.Background()

	peers, err := c.ListPeers(ctx)
	require.NoError(t, err)
	require.Len(t, peers, 4)
	require.Equal(t, "peer-a", peers[0].ID)
	require.Equal(t, "100.92.3.15", peers[0].IP)
	require.Equal(t, "edge-a.netbird.cloud", peers[0].DNSLabel)
	require.Equal(t, "All", peers[0].Groups[0].Name)
	require.Equal(t, 3, peers[0].AccessiblePeersCount)

	peers, err = c.FindPeers(ctx, PeerFilter{IP: "100.92.14.7"})
	require.NoError(t, err)
	require.Len(t, peers, 1)
	require.Equal(t, "peer-b", peers[0].ID)

	require.NoError(t, c.DeletePeer(ctx, "peer-b"))
	require.ErrorIs(t, c.DeletePeer(ctx, "peer-b"), ErrNotFound)

	groups, err := c.ListGroups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 3)
	require.Equal(t, "grp-edge", groups[1].ID)

	ids, err := c.ResolveGroups(ctx, []string{"site-a", "edge"})
	require.NoError(t, err)
	require.Equal(t, []string{"grp-site-a", "grp-edge"}, ids)
	ids, err = c.ResolveGroups(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = c.ResolveGroups(ctx, []string{"edge", "nope", "gone"})
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, `no group named "nope", "gone"`)

	require.Equal(t, []string{
		"GET /api/peers", "GET /api/peers", "DELETE /api/peers/{peerId}", "DELETE /api/peers/{peerId}",
		"GET /api/groups", "GET /api/groups", "GET /api/groups",
	}, s.Calls())
}

func TestErrorsAndRetries(t *testing.T) {
	t.Parallel()
	const route = "GET /api/groups"
	serverError := nbtest.Reply{Status: http.StatusInternalServerError, Body: `{"message":"internal error","code":500}`}
	for _, tc := range []struct {
		name      string
		token     string
		replies   []nbtest.Reply
		wantErr   error
		wantMsg   string
		wantCalls int
		wantWaits []time.Duration // exact; nil: none
		waitBound time.Duration   // when set: len(wantWaitsN) waits each ≤ bound
		wantWaitN int
	}{
		{name: "success", wantCalls: 1},
		{name: "401 malformed token", token: "nbp_wrong", wantErr: ErrTokenRejected, wantMsg: "401 Unauthorized: token invalid", wantCalls: 1},
		// NetBird v0.60.0+ answers a well-formed unknown token with 404; on
		// a listing that can only mean the token.
		{name: "404 unknown token", token: nbtest.DeadToken, wantErr: ErrTokenRejected, wantMsg: "404 Not Found: resource not found", wantCalls: 1},
		{name: "403", replies: []nbtest.Reply{{Status: 403, Body: `{"message":"user is not admin","code":403}`}}, wantErr: ErrForbidden, wantMsg: "user is not admin", wantCalls: 1},
		{name: "404", replies: []nbtest.Reply{{Status: 404, Body: `{"message":"account not found","code":404}`}}, wantErr: ErrNotFound, wantMsg: "account not found", wantCalls: 1},
		{name: "400 validation", replies: []nbtest.Reply{{Status: 400, Body: `{"message":"invalid name filter","code":400}`}}, wantErr: ErrInvalid, wantMsg: "400 Bad Request: invalid name filter", wantCalls: 1},
		{name: "422 validation", replies: []nbtest.Reply{{Status: 422, Body: `{"message":"expiresIn can not be in the past","code":422}`}}, wantErr: ErrInvalid, wantMsg: "can not be in the past", wantCalls: 1},
		{name: "409", replies: []nbtest.Reply{{Status: 409, Body: `{"message":"exists","code":409}`}}, wantErr: ErrConflict, wantCalls: 1},
		{name: "non-JSON error body", replies: []nbtest.Reply{{Status: 418, Body: "short and stout\n"}}, wantErr: ErrUnexpected, wantMsg: "short and stout", wantCalls: 1},
		{
			name: "429 honours Retry-After seconds then succeeds", wantCalls: 2, wantWaits: []time.Duration{7 * time.Second},
			replies: []nbtest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: `{"message":"too many requests","code":429}`}},
		},
		{
			name: "429 Retry-After over the cap gives up at once", wantErr: ErrRateLimited, wantMsg: "retry-after 2m0s exceeds 1m0s", wantCalls: 1,
			replies: []nbtest.Reply{{Status: 429, Header: map[string]string{"Retry-After": "120"}}},
		},
		{
			name: "429 without Retry-After backs off", wantCalls: 2, waitBound: DefaultRetryBase, wantWaitN: 1,
			replies: []nbtest.Reply{{Status: 429}},
		},
		{
			name: "500 retried then succeeds", wantCalls: 3, waitBound: 2 * DefaultRetryBase, wantWaitN: 2,
			replies: []nbtest.Reply{serverError, {Status: 503, Body: "upstream down"}},
		},
		{
			name: "500 retried then gives up", wantErr: ErrServer, wantMsg: "giving up after 4 attempts: netbird api GET /api/groups: 500 Internal Server Error: internal error",
			wantCalls: 4, waitBound: 4 * DefaultRetryBase, wantWaitN: 3,
			replies: []nbtest.Reply{serverError, serverError, serverError, serverError},
		},
		{name: "malformed success body", replies: []nbtest.Reply{{Status: 200, Body: `{"not":"an array"}`}}, wantErr: ErrUnexpected, wantCalls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			sent := cmp.Or(tc.token, nbtest.Token)
			s.Queue(route, tc.replies...)
			var logs syncBuffer
			c, waits := newTestClient(t, s, func(o *Options) {
				withLogs(&logs)(o)
				o.Token = sent
			})
			groups, err := c.ListGroups(context.Background())
			require.Len(t, s.Calls(), tc.wantCalls)
			require.NotContains(t, logs.String(), sent)
			switch {
			case tc.wantWaits != nil:
				require.Equal(t, tc.wantWaits, *waits)
			case tc.wantWaitN > 0:
				require.Len(t, *waits, tc.wantWaitN)
				for _, w := range *waits {
					require.LessOrEqual(t, w, tc.waitBound)
				}
			default:
				require.Empty(t, *waits)
			}
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, groups, 3)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.wantMsg)
			require.NotContains(t, err.Error(), sent)
		})
	}
}

func TestPostIsRetriedOnlyOnAnswers(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	s.Queue("POST /api/setup-keys", nbtest.Reply{Status: 502, Body: "bad gateway"})
	c, waits := newTestClient(t, s, nil)
	_, err := c.CreateSetupKey(context.Background(), CreateSetupKeyRequest{Name: "k", Type: SetupKeyOneOff, ExpiresIn: 86400, AutoGroups: []string{}, UsageLimit: 1})
	require.NoError(t, err)
	require.Len(t, *waits, 1)
	require.Len(t, s.Bodies("POST /api/setup-keys"), 2, "the body is resent whole")

	// Transport errors: idempotent calls are retried, a POST is not (it
	// may have created the key).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, tc := range []struct {
		name      string
		call      func(*Client) error
		wantWaits int
	}{
		{"GET", func(c *Client) error { _, err := c.ListPeers(context.Background()); return err }, 3},
		{"POST", func(c *Client) error {
			_, err := c.CreateSetupKey(context.Background(), CreateSetupKeyRequest{Name: "k", Type: SetupKeyOneOff, ExpiresIn: 86400, UsageLimit: 1})
			return err
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Options{BaseURL: "http://" + addr, Token: nbtest.Token})
			require.NoError(t, err)
			var n int
			c.wait = func(context.Context, time.Duration) error { n++; return nil }
			err = tc.call(c)
			require.Error(t, err)
			require.Equal(t, tc.wantWaits, n)
			require.NotContains(t, err.Error(), nbtest.Token)
		})
	}
}

func TestRetryWaitStopsOnContext(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	s.Queue("GET /api/groups", nbtest.Reply{Status: 503})
	c, err := New(Options{BaseURL: s.URL(), Token: nbtest.Token, RetryBase: time.Hour, RetryMax: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	c.wait = func(ctx context.Context, d time.Duration) error {
		cancel() // the owner shuts down while the client waits
		return sleep(ctx, d)
	}
	_, err = c.ListGroups(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", -1},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-2", -1},
		{"soon", -1},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999", 24 * time.Hour},
	} {
		require.Equal(t, tc.want, parseRetryAfter(tc.in, now), tc.in)
	}
}
