package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/client/clienttest"
	"github.com/kubedoio/n-kudo/internal/store"
)

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, selfSignedCA(t), 0o600))
	tests := []struct {
		name    string
		cfg     client.Config
		wantErr error
	}{
		{"ok with PEM", client.Config{BaseURL: "https://127.0.0.1:8443", CAPEM: selfSignedCA(t)}, nil},
		{"ok with file", client.Config{BaseURL: "https://127.0.0.1:8443/", CAFile: caFile}, nil},
		{"missing url", client.Config{CAPEM: selfSignedCA(t)}, client.ErrInvalidConfig},
		{"relative url", client.Config{BaseURL: "127.0.0.1:8443", CAPEM: selfSignedCA(t)}, client.ErrInvalidConfig},
		{"plain http", client.Config{BaseURL: "http://127.0.0.1:8443", CAPEM: selfSignedCA(t)}, client.ErrInvalidConfig},
		{"no CA", client.Config{BaseURL: "https://127.0.0.1:8443"}, client.ErrInvalidConfig},
		{"CA without certificate", client.Config{BaseURL: "https://127.0.0.1:8443", CAPEM: []byte("nope")}, client.ErrInvalidConfig},
		{"missing CA file", client.Config{BaseURL: "https://127.0.0.1:8443", CAFile: caFile + ".missing"}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := client.New(tt.cfg)
			if tt.wantErr == nil {
				require.NoError(t, err)
				c.Close()
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	tests := []struct {
		name string
		url  string
		ca   []byte
	}{
		{"nothing listening", "https://" + closedAddr, srv.CAPEM},
		{"server not signed by the CA", srv.URL, selfSignedCA(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := client.New(client.Config{BaseURL: tt.url, CAPEM: tt.ca, APIKey: clienttest.AdminKey})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.ListTenants(context.Background(), client.ListOptions{})
			require.ErrorIs(t, err, client.ErrUnreachable)
			require.True(t, client.IsUnreachable(err))
			var ae *client.APIError
			require.False(t, errors.As(err, &ae))
		})
	}

	t.Run("cancelled context is not unreachable", func(t *testing.T) {
		t.Parallel()
		c := srv.Client(t, clienttest.AdminKey, "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.ListTenants(ctx, client.ListOptions{})
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, client.IsUnreachable(err))
	})
}

func TestTenantsAndKeys(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	admin := srv.Client(t, clienttest.AdminKey, "")

	tn, err := admin.CreateTenant(ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, "acme", tn.Name)
	require.NotEqual(t, uuid.Nil, tn.ID)

	page, err := admin.ListTenants(ctx, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, tn.ID, page.Items[0].ID)

	k, err := admin.CreateAPIKey(ctx, tn.ID, "ci", client.RoleOperator)
	require.NoError(t, err)
	require.Regexp(t, `^nk_`, k.Key)
	require.Equal(t, client.RoleOperator, k.Role)

	keys, err := admin.ListAPIKeys(ctx, tn.ID, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, keys.Items, 1)
	require.Equal(t, k.Prefix, keys.Items[0].Prefix)

	op := srv.Client(t, k.Key, "")
	_, err = op.ListSites(ctx, client.ListOptions{})
	require.NoError(t, err)

	// A deleted key stops working at once.
	require.NoError(t, admin.DeleteAPIKey(ctx, tn.ID, k.ID))
	_, err = op.ListSites(ctx, client.ListOptions{})
	require.True(t, client.IsUnauthenticated(err), "got %v", err)
}

func TestSitesCRUD(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")

	s, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1", Description: "Frankfurt",
		NetBird: &client.SiteNetBird{Enabled: true, Groups: []string{"edge"}}})
	require.NoError(t, err)
	require.Equal(t, "fra1", s.Name)
	require.Equal(t, []string{"edge"}, s.NetBird.Groups)

	got, err := c.GetSite(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, s.ID, got.ID)
	require.Equal(t, "Frankfurt", got.Description)

	name, off := "fra2", false
	upd, err := c.UpdateSite(ctx, s.ID, client.UpdateSiteRequest{Name: &name, NetBird: &client.SiteNetBirdPatch{Enabled: &off}})
	require.NoError(t, err)
	require.Equal(t, "fra2", upd.Name)
	require.Equal(t, "Frankfurt", upd.Description, "absent fields stay unchanged")
	require.False(t, upd.NetBird.Enabled)

	tok, err := c.CreateEnrollmentToken(ctx, s.ID, client.CreateEnrollmentTokenRequest{TTL: 30 * time.Minute, MaxUses: 3})
	require.NoError(t, err)
	require.Regexp(t, `^nket_`, tok.Token)
	require.Equal(t, 3, tok.MaxUses)
	require.WithinDuration(t, time.Now().Add(30*time.Minute), tok.ExpiresAt, time.Minute)

	require.NoError(t, c.DeleteSite(ctx, s.ID))
	_, err = c.GetSite(ctx, s.ID)
	require.True(t, client.IsNotFound(err), "got %v", err)
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusNotFound, ae.Status)
	require.Equal(t, client.CodeNotFound, ae.Code)
	require.NotEmpty(t, ae.RequestID)
	require.Contains(t, err.Error(), "(not_found, request "+ae.RequestID+")")
}

func TestPagination(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	var want []uuid.UUID
	for i := range 7 {
		s, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: fmt.Sprintf("site-%d", i)})
		require.NoError(t, err)
		want = append(want, s.ID)
	}

	first, err := c.ListSites(ctx, client.ListOptions{Limit: 3})
	require.NoError(t, err)
	require.Len(t, first.Items, 3)
	require.NotEmpty(t, first.NextCursor)
	second, err := c.ListSites(ctx, client.ListOptions{Limit: 3, Cursor: first.NextCursor})
	require.NoError(t, err)
	require.Equal(t, want[3], second.Items[0].ID)

	// All follows next_cursor with pages smaller than the list.
	var got []uuid.UUID
	for s, err := range client.All(ctx, func(ctx context.Context, cursor string) (client.Page[client.Site], error) {
		return c.ListSites(ctx, client.ListOptions{Limit: 2, Cursor: cursor})
	}) {
		require.NoError(t, err)
		got = append(got, s.ID)
	}
	require.Equal(t, want, got)

	// Breaking out of the loop stops fetching.
	n := 0
	for _, err := range c.AllSites(ctx) {
		require.NoError(t, err)
		n++
		if n == 2 {
			break
		}
	}
	require.Equal(t, 2, n)

	raw, err := client.Collect(ctx, c.RawPages(client.Sites, client.Filter{}))
	require.NoError(t, err)
	require.Len(t, raw.Items, 7)
	require.Empty(t, raw.NextCursor)
	var s client.Site
	require.NoError(t, json.Unmarshal(raw.Items[6], &s))
	require.Equal(t, "site-6", s.Name)

	// A bad cursor is the server's invalid_argument, yielded once.
	var errs int
	for _, err := range client.All(ctx, func(ctx context.Context, _ string) (client.Page[client.Site], error) {
		return c.ListSites(ctx, client.ListOptions{Cursor: "!!"})
	}) {
		require.True(t, client.IsInvalidArgument(err), "got %v", err)
		errs++
	}
	require.Equal(t, 1, errs)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")

	key := client.NewIdempotencyKey()
	a, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1"}, client.WithIdempotencyKey(key))
	require.NoError(t, err)
	b, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1"}, client.WithIdempotencyKey(key))
	require.NoError(t, err)
	require.Equal(t, a.ID, b.ID, "a retried create answers the first result")

	_, err = c.CreateSite(ctx, client.CreateSiteRequest{Name: "other"}, client.WithIdempotencyKey(key))
	require.ErrorIs(t, err, client.ErrIdempotencyMismatch)

	// Without an explicit key every call gets a fresh one.
	x, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "x"})
	require.NoError(t, err)
	y, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "y"})
	require.NoError(t, err)
	require.NotEqual(t, x.ID, y.ID)
	require.NotEqual(t, client.NewIdempotencyKey(), client.NewIdempotencyKey())
}

func TestErrorsClassify(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	other := srv.NewTenant(t, "globex")
	otherSite, err := srv.Client(t, other.OperatorKey, "").CreateSite(ctx, client.CreateSiteRequest{Name: "theirs"})
	require.NoError(t, err)

	tests := []struct {
		name   string
		key    string
		tenant string
		call   func(*client.Client) error
		want   error
		status int
	}{
		{"bad key", "nk_not-a-key", "", func(c *client.Client) error { _, err := c.ListSites(ctx, client.ListOptions{}); return err }, client.ErrUnauthenticated, 401},
		{"viewer cannot mutate", tn.View, "", func(c *client.Client) error {
			_, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "x"})
			return err
		}, client.ErrForbidden, 403},
		{"operator cannot read audit", tn.OperatorKey, "", func(c *client.Client) error { _, err := c.ListAuditEvents(ctx, client.ListOptions{}); return err }, client.ErrForbidden, 403},
		{"tenant key cannot list tenants", tn.AdminKey, "", func(c *client.Client) error { _, err := c.ListTenants(ctx, client.ListOptions{}); return err }, client.ErrForbidden, 403},
		{"admin key must name a tenant", clienttest.AdminKey, "", func(c *client.Client) error { _, err := c.ListSites(ctx, client.ListOptions{}); return err }, client.ErrInvalidArgument, 400},
		{"another tenant's site", tn.AdminKey, "", func(c *client.Client) error { _, err := c.GetSite(ctx, otherSite.ID); return err }, client.ErrNotFound, 404},
		{"unknown vm", tn.AdminKey, "", func(c *client.Client) error { _, err := c.GetVM(ctx, uuid.New()); return err }, client.ErrNotFound, 404},
		{"bad name", tn.OperatorKey, "", func(c *client.Client) error {
			_, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: ""})
			return err
		}, client.ErrInvalidArgument, 400},
		{"bad ttl", tn.OperatorKey, "", func(c *client.Client) error {
			s, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "ttl"})
			if err != nil {
				return err
			}
			_, err = c.CreateEnrollmentToken(ctx, s.ID, client.CreateEnrollmentTokenRequest{TTL: time.Second})
			return err
		}, client.ErrInvalidArgument, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(srv.Client(t, tt.key, tt.tenant))
			require.ErrorIs(t, err, tt.want)
			var ae *client.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tt.status, ae.Status)
			require.NotEmpty(t, ae.Code)
			require.NotEmpty(t, ae.Message)
		})
	}

	t.Run("admin key with tenant", func(t *testing.T) {
		t.Parallel()
		c := srv.Client(t, clienttest.AdminKey, tn.ID.String())
		_, err := c.ListSites(ctx, client.ListOptions{})
		require.NoError(t, err)
	})
}

func TestInventory(t *testing.T) {
	t.Parallel()
	srv := clienttest.Start(t)
	ctx := context.Background()
	tn := srv.NewTenant(t, "acme")
	c := srv.Client(t, tn.OperatorKey, "")
	site, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "fra1"})
	require.NoError(t, err)
	other, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: "ams1"})
	require.NoError(t, err)
	seen := time.Now().UTC().Truncate(time.Second)
	h := clienttest.HostFixture{SiteID: site.ID, AgentID: uuid.New(), HostID: uuid.New(), Hostname: "edge-1", Simulated: true, Online: true, SeenAt: seen}
	srv.EnrollHost(t, c, h)

	hosts, err := c.ListHosts(ctx, client.Filter{SiteID: site.ID}, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, hosts.Items, 1)
	got := hosts.Items[0]
	require.Equal(t, h.HostID, got.ID)
	require.True(t, got.Online)
	require.True(t, got.Simulated())
	require.Equal(t, 8, got.Facts.CPUCores)
	require.Equal(t, "connected", got.NetBird.State)
	require.NotNil(t, got.LastSeenAt)

	none, err := c.ListHosts(ctx, client.Filter{SiteID: other.ID}, client.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, none.Items)
	require.NotNil(t, none.Items, "an empty list is [] not null")

	one, err := c.GetHost(ctx, h.HostID)
	require.NoError(t, err)
	require.Equal(t, "edge-1", one.Hostname)

	agents, err := c.ListAgents(ctx, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, agents.Items, 1)
	require.Equal(t, h.AgentID, agents.Items[0].ID)
	require.False(t, agents.Items[0].Revoked)

	revoked, err := c.RevokeAgent(ctx, h.AgentID)
	require.NoError(t, err)
	require.True(t, revoked.Revoked)
	require.Equal(t, "revoked", revoked.Status)

	// VMs and plans are written by the server's VM and plan routes; the
	// store seeds them here so the read side is tested on real rows.
	vmID, planID, execID := uuid.New(), uuid.New(), uuid.New()
	require.NoError(t, srv.Store.CreateVM(ctx, store.VM{
		ID: vmID, TenantID: tn.ID, SiteID: site.ID, HostID: h.HostID, Name: "web-1",
		DesiredState: store.VMRunning, ActualState: store.VMStopped, VCPUs: 2, MemoryMiB: 512,
		Spec: json.RawMessage(`{"disk_image":"/img/debian.raw"}`), CreatedAt: seen, UpdatedAt: seen,
	}))
	require.NoError(t, srv.Store.CreatePlan(ctx, store.Plan{
		ID: planID, TenantID: tn.ID, SiteID: site.ID, HostID: h.HostID, AgentID: h.AgentID, Status: store.StatusPending,
		Actions: []store.PlanAction{{ID: uuid.New(), PlanID: planID, Type: store.ActionMicroVMStart, VMID: vmID,
			Params: json.RawMessage(`{}`), Status: store.StatusPending, ExecutionID: execID, UpdatedAt: seen}},
		CreatedAt: seen, UpdatedAt: seen,
	}))

	vms, err := c.ListVMs(ctx, client.Filter{SiteID: site.ID}, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, vms.Items, 1)
	vm := vms.Items[0]
	require.Equal(t, "web-1", vm.Name)
	require.True(t, vm.Drift)
	require.Equal(t, 512, vm.MemoryMiB)
	gotVM, err := c.GetVM(ctx, vmID)
	require.NoError(t, err)
	require.JSONEq(t, `{"disk_image":"/img/debian.raw"}`, string(gotVM.Spec))

	plans, err := c.ListPlans(ctx, client.Filter{Status: client.StatusPending}, client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, plans.Items, 1)
	plan, err := c.GetPlan(ctx, planID)
	require.NoError(t, err)
	require.Len(t, plan.Actions, 1)
	require.Equal(t, execID, plan.Actions[0].ExecutionID)
	require.Equal(t, vmID, *plan.Actions[0].VMID)
	exec, err := c.GetExecution(ctx, execID)
	require.NoError(t, err)
	require.Equal(t, planID, exec.PlanID)

	audit, err := srv.Client(t, tn.AdminKey, "").ListAuditEvents(ctx, client.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, audit.Items)
}
