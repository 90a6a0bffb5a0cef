package netbirdapi

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/netbirdapi/nbtest"
)

func newSetup(t *testing.T, s *nbtest.Server, o SetupOptions) *Setup {
	t.Helper()
	c, _ := newTestClient(t, s, nil)
	setup, err := NewSetup(c, o)
	require.NoError(t, err)
	return setup
}

func TestNewSetupValidates(t *testing.T) {
	t.Parallel()
	_, err := NewSetup(nil, SetupOptions{})
	require.ErrorIs(t, err, ErrConfig)
}

// mint is a MintRequest for site "a" and one use, with the fields a test
// does not care about filled in.
func mint(r MintRequest) MintRequest {
	r.SiteName = cmp.Or(r.SiteName, "a")
	r.TokenID = cmp.Or(r.TokenID, "t")
	r.Uses = cmp.Or(r.Uses, 1)
	r.ExpiresIn = cmp.Or(r.ExpiresIn, 75*time.Minute)
	return r
}

func TestMintAndRevokeForToken(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	setup := newSetup(t, s, SetupOptions{})
	ctx := context.Background()

	keyID, key, err := setup.MintForToken(ctx, mint(MintRequest{SiteName: "site a", Groups: []string{"edge", "site-a"}, TokenID: "tok-123"}))
	require.NoError(t, err)
	require.Equal(t, "sk-1", keyID)
	require.NotEmpty(t, key)
	require.Equal(t, []map[string]any{{
		"name": "nkudo-site-a-tok-123", "type": "one-off", "expires_in": 4500.0,
		"auto_groups": []any{"grp-edge", "grp-site-a"}, "usage_limit": 1.0,
		"ephemeral": false, "allow_extra_dns_labels": false,
	}}, s.Bodies("POST /api/setup-keys"))

	require.NoError(t, setup.RevokeForToken(ctx, keyID))
	c, _ := newTestClient(t, s, nil)
	got, err := c.GetSetupKey(ctx, keyID)
	require.NoError(t, err)
	require.True(t, got.Revoked)
	require.Equal(t, []string{"grp-edge", "grp-site-a"}, got.AutoGroups)

	require.NoError(t, setup.DeleteKeyForToken(ctx, keyID))
	require.Empty(t, s.SetupKeys())
	require.NoError(t, setup.RevokeForToken(ctx, keyID), "a key already gone counts as revoked")
	require.NoError(t, setup.DeleteKeyForToken(ctx, keyID), "a key already gone counts as deleted")

	s.Queue("GET /api/setup-keys/{keyId}", nbtest.Reply{Status: http.StatusUnauthorized, Body: `{"message":"token expired"}`})
	err = setup.RevokeForToken(ctx, keyID)
	require.ErrorIs(t, err, ErrUnauthorized)
	require.True(t, IsTokenRejected(err))
}

// TestMintExpiresWithToken: the key lives as long as asked, not the day
// the document claims as a minimum; the stand-in takes any expires_in
// that is not negative, as NetBird since v0.31.0 does.
func TestMintExpiresWithToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want float64
	}{
		{in: 15*time.Minute + time.Hour, want: 4500},
		{in: 90 * time.Second, want: 90},
		{in: 1500 * time.Millisecond, want: 2}, // rounded up, never expiring early
		{in: 400 * 24 * time.Hour, want: 400 * 24 * 3600},
	} {
		t.Run(tc.in.String(), func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			before := time.Now()
			keyID, _, err := newSetup(t, s, SetupOptions{}).MintForToken(context.Background(), mint(MintRequest{ExpiresIn: tc.in}))
			require.NoError(t, err)
			require.Equal(t, tc.want, s.Bodies("POST /api/setup-keys")[0]["expires_in"])
			exp := s.SetupKeys()[keyID].Expires
			require.WithinRange(t, exp, before.Add(tc.in-time.Second), time.Now().Add(tc.in+time.Second))
		})
	}
}

func TestMintForTokenFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		req     MintRequest
		queue   map[string]nbtest.Reply
		wantErr error
		wantMsg string
	}{
		{name: "unknown group", req: mint(MintRequest{Groups: []string{"edge", "missing"}}), wantErr: ErrNotFound, wantMsg: `no group named "missing"`},
		{name: "missing site", req: mint(MintRequest{SiteName: " "}), wantErr: ErrInvalid},
		{name: "missing token id", req: MintRequest{SiteName: "a", Uses: 1, ExpiresIn: time.Hour}, wantErr: ErrInvalid},
		{name: "no use", req: mint(MintRequest{Uses: -1}), wantErr: ErrInvalid, wantMsg: "usage limit -1"},
		{name: "no expiry", req: mint(MintRequest{ExpiresIn: -time.Second}), wantErr: ErrInvalid, wantMsg: "not positive"},
		{
			name: "netbird refuses", req: mint(MintRequest{}), wantErr: ErrInvalid, wantMsg: "invalid auto groups: group not found: grp-x",
			queue: map[string]nbtest.Reply{"POST /api/setup-keys": {Status: 422, Body: `{"message":"invalid auto groups: group not found: grp-x","code":422}`}},
		},
		{
			name: "answer without key", req: mint(MintRequest{}), wantErr: ErrUnexpected,
			queue: map[string]nbtest.Reply{"POST /api/setup-keys": {Status: 200, Body: `{"id":"sk-9"}`}},
		},
		{name: "dead token", req: mint(MintRequest{Groups: []string{"edge"}}), wantErr: ErrTokenRejected,
			queue: map[string]nbtest.Reply{"GET /api/groups": {Status: 404, Body: `{"message":"resource not found","code":404}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			for route, r := range tc.queue {
				s.Queue(route, r)
			}
			id, key, err := newSetup(t, s, SetupOptions{}).MintForToken(ctx, tc.req)
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.wantMsg)
			require.Empty(t, id)
			require.Empty(t, key)
		})
	}
}

// TestMintSkipsGroupAll: NetBird refuses All in auto_groups with 422
// (setupkey.go); a site saved with it before the API refused it still
// gets keys, since every peer is in All anyway.
func TestMintSkipsGroupAll(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	_, _, err := newSetup(t, s, SetupOptions{}).MintForToken(context.Background(), mint(MintRequest{Groups: []string{"All", "edge"}}))
	require.NoError(t, err)
	require.Equal(t, []any{"grp-edge"}, s.Bodies("POST /api/setup-keys")[0]["auto_groups"])
}

func TestMintForTokenUsageLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uses     int
		wantType string
	}{
		{uses: 1, wantType: "one-off"},
		{uses: 2, wantType: "reusable"},
		{uses: 50, wantType: "reusable"},
	} {
		t.Run(strconv.Itoa(tc.uses), func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			keyID, _, err := newSetup(t, s, SetupOptions{}).MintForToken(context.Background(), mint(MintRequest{Groups: []string{"edge"}, Uses: tc.uses}))
			require.NoError(t, err)
			body := s.Bodies("POST /api/setup-keys")[0]
			require.Equal(t, tc.wantType, body["type"])
			require.Equal(t, float64(tc.uses), body["usage_limit"])
			require.Equal(t, tc.uses, s.SetupKeys()[keyID].UsageLimit)
		})
	}
}

func TestMintForTokenOptions(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	setup := newSetup(t, s, SetupOptions{KeyPrefix: "fleet", Ephemeral: true})
	_, _, err := setup.MintForToken(context.Background(), mint(MintRequest{SiteName: "b", TokenID: "tok"}))
	require.NoError(t, err)
	body := s.Bodies("POST /api/setup-keys")[0]
	require.Equal(t, "fleet-b-tok", body["name"])
	require.Equal(t, true, body["ephemeral"])
	require.Equal(t, []any{}, body["auto_groups"])
}

// TestDeadTokenNeverReadsAsGone: since NetBird v0.60.0 an unknown or
// deleted token gets 404 on every route (auth_middleware.go). Revoking or
// deleting a key and deleting a peer must then fail as a rejected token,
// not succeed as "already gone".
func TestDeadTokenNeverReadsAsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func(s *Setup, keyID string) error
	}{
		{"revoke key", func(s *Setup, keyID string) error { return s.RevokeForToken(ctx, keyID) }},
		{"delete key", func(s *Setup, keyID string) error { return s.DeleteKeyForToken(ctx, keyID) }},
		{"delete peer", func(s *Setup, _ string) error { return s.DeletePeerForAgent(ctx, "peer-a") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			setup := newSetup(t, s, SetupOptions{})
			keyID, _, err := setup.MintForToken(ctx, mint(MintRequest{}))
			require.NoError(t, err)
			s.ExpectToken("") // the token was deleted in NetBird
			err = tc.call(setup, keyID)
			require.ErrorIs(t, err, ErrTokenRejected)
			require.True(t, IsTokenRejected(err))
			require.Len(t, s.SetupKeys(), 1, "the key is still live in NetBird")
			require.Contains(t, s.PeerIDs(), "peer-a")
		})
	}
}

func TestPeerForHost(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	setup := newSetup(t, s, SetupOptions{})
	for _, tc := range []struct {
		query   string
		want    string
		wantErr error
	}{
		{query: "edge-a", want: "peer-a"},
		{query: "EDGE-A", want: "peer-a"},
		{query: "edge-b", want: "peer-b"}, // hostname, though the peer was renamed
		{query: "renamed-b", want: "peer-b"},
		{query: "edge-b.netbird.cloud.", want: "peer-b"},
		{query: "100.92.3.15", want: "peer-a"},
		{query: "100.92.99.99", wantErr: ErrNotFound},
		{query: "nowhere", wantErr: ErrNotFound},
		{query: "dup", wantErr: ErrAmbiguous},
		{query: "", wantErr: ErrInvalid},
	} {
		p, err := setup.PeerForHost(context.Background(), tc.query)
		if tc.wantErr != nil {
			require.ErrorIs(t, err, tc.wantErr, tc.query)
			continue
		}
		require.NoError(t, err, tc.query)
		require.Equal(t, tc.want, p.ID, tc.query)
	}
	require.Contains(t, s.Calls(), "GET /api/peers")
}

func TestDeletePeerForAgent(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	setup := newSetup(t, s, SetupOptions{})
	ctx := context.Background()
	require.NoError(t, setup.DeletePeerForAgent(ctx, "peer-a"))
	require.NoError(t, setup.DeletePeerForAgent(ctx, "peer-a"), "deleting twice")
	_, err := setup.PeerForHost(ctx, "edge-a")
	require.ErrorIs(t, err, ErrNotFound)

	s.Queue("DELETE /api/peers/{peerId}", nbtest.Reply{Status: 500}, nbtest.Reply{Status: 500}, nbtest.Reply{Status: 500}, nbtest.Reply{Status: 500})
	require.ErrorIs(t, setup.DeletePeerForAgent(ctx, "peer-b"), ErrServer)

	// A peer a network router depends on is refused with 412
	// (peer.go validatePeerDelete).
	s.LinkPeer("peer-b", "network router")
	err = setup.DeletePeerForAgent(ctx, "peer-b")
	require.ErrorIs(t, err, ErrPreconditionFailed)
	require.Contains(t, s.PeerIDs(), "peer-b")
}
