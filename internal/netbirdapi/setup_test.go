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
	c, err := New(Options{BaseURL: "https://nb.example", Token: "t"})
	require.NoError(t, err)
	for _, o := range []SetupOptions{
		{KeyExpiry: time.Hour},
		{KeyExpiry: 366 * 24 * time.Hour},
		{KeyExpiry: 24*time.Hour + time.Millisecond},
	} {
		_, err := NewSetup(c, o)
		require.ErrorIs(t, err, ErrConfig, o.KeyExpiry)
	}
	_, err = NewSetup(nil, SetupOptions{})
	require.ErrorIs(t, err, ErrConfig)
}

func TestMintAndRevokeForToken(t *testing.T) {
	t.Parallel()
	s := nbtest.New(t)
	setup := newSetup(t, s, SetupOptions{})
	ctx := context.Background()

	keyID, key, err := setup.MintForToken(ctx, "site a", []string{"edge", "site-a"}, "tok-123", 1)
	require.NoError(t, err)
	require.Equal(t, "sk-1", keyID)
	require.NotEmpty(t, key)
	require.Equal(t, []map[string]any{{
		"name": "nkudo-site-a-tok-123", "type": "one-off", "expires_in": 86400.0,
		"auto_groups": []any{"grp-edge", "grp-site-a"}, "usage_limit": 1.0,
		"ephemeral": false, "allow_extra_dns_labels": false,
	}}, s.Bodies("POST /api/setup-keys"))

	require.NoError(t, setup.RevokeForToken(ctx, keyID))
	c, _ := newTestClient(t, s, nil)
	got, err := c.GetSetupKey(ctx, keyID)
	require.NoError(t, err)
	require.True(t, got.Revoked)
	require.Equal(t, []string{"grp-edge", "grp-site-a"}, got.AutoGroups)

	require.NoError(t, c.DeleteSetupKey(ctx, keyID))
	require.NoError(t, setup.RevokeForToken(ctx, keyID), "a key already gone counts as revoked")

	s.Queue("GET /api/setup-keys/{keyId}", nbtest.Reply{Status: http.StatusUnauthorized, Body: `{"message":"token expired"}`})
	require.ErrorIs(t, setup.RevokeForToken(ctx, keyID), ErrUnauthorized)
}

func TestMintForTokenFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		site    string
		groups  []string
		token   string
		uses    int // 0 means 1
		queue   map[string]nbtest.Reply
		wantErr error
		wantMsg string
	}{
		{name: "unknown group", site: "a", groups: []string{"edge", "missing"}, token: "t", wantErr: ErrNotFound, wantMsg: `no group named "missing"`},
		{name: "missing site", site: " ", token: "t", wantErr: ErrInvalid},
		{name: "missing token id", site: "a", wantErr: ErrInvalid},
		{name: "no use", site: "a", token: "t", uses: -1, wantErr: ErrInvalid, wantMsg: "usage limit -1"},
		{
			name: "netbird refuses", site: "a", token: "t", wantErr: ErrInvalid, wantMsg: "group grp-x doesn't exist",
			queue: map[string]nbtest.Reply{"POST /api/setup-keys": {Status: 422, Body: `{"message":"group grp-x doesn't exist","code":422}`}},
		},
		{
			name: "answer without key", site: "a", token: "t", wantErr: ErrUnexpected,
			queue: map[string]nbtest.Reply{"POST /api/setup-keys": {Status: 200, Body: `{"id":"sk-9"}`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := nbtest.New(t)
			for route, r := range tc.queue {
				s.Queue(route, r)
			}
			id, key, err := newSetup(t, s, SetupOptions{}).MintForToken(ctx, tc.site, tc.groups, tc.token, cmp.Or(tc.uses, 1))
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.wantMsg)
			require.Empty(t, id)
			require.Empty(t, key)
		})
	}
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
			keyID, _, err := newSetup(t, s, SetupOptions{}).MintForToken(context.Background(), "a", []string{"edge"}, "tok", tc.uses)
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
	setup := newSetup(t, s, SetupOptions{KeyPrefix: "fleet", KeyExpiry: 7 * 24 * time.Hour, Ephemeral: true})
	_, _, err := setup.MintForToken(context.Background(), "b", nil, "tok", 1)
	require.NoError(t, err)
	body := s.Bodies("POST /api/setup-keys")[0]
	require.Equal(t, "fleet-b-tok", body["name"])
	require.Equal(t, float64(7*24*3600), body["expires_in"])
	require.Equal(t, true, body["ephemeral"])
	require.Equal(t, []any{}, body["auto_groups"])
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
}
