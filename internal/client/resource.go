package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"
)

// Collection names a listable collection of the API, for callers that
// handle lists generically (the CLI's `get`, raw JSON output).
type Collection string

// The listable collections.
const (
	Tenants     Collection = "tenants"
	Sites       Collection = "sites"
	Hosts       Collection = "hosts"
	Agents      Collection = "agents"
	VMs         Collection = "vms"
	Plans       Collection = "plans"
	AuditEvents Collection = "audit-events"
)

// Filter narrows a list; zero fields match everything. Not every
// collection honours every field (sites ignore SiteID, for instance).
type Filter struct {
	SiteID         uuid.UUID
	HostID         uuid.UUID
	Status         string // plans only
	IncludeDeleted bool   // vms only
}

func (f Filter) apply(q url.Values) {
	if f.SiteID != uuid.Nil {
		q.Set("site_id", f.SiteID.String())
	}
	if f.HostID != uuid.Nil {
		q.Set("host_id", f.HostID.String())
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.IncludeDeleted {
		q.Set("include_deleted", "true")
	}
}

// list fetches one page of path into Page[T].
func list[T any](ctx context.Context, c *Client, path string, f Filter, o ListOptions) (Page[T], error) {
	q := o.values()
	f.apply(q)
	var p Page[T]
	if err := c.do(ctx, request{method: http.MethodGet, path: path, query: q}, &p); err != nil {
		return Page[T]{}, fmt.Errorf("listing %s: %w", path, err)
	}
	if p.Items == nil {
		p.Items = []T{}
	}
	return p, nil
}

// ListRaw fetches one page of a collection without decoding its items, so
// that fields this client does not know survive (e.g. for JSON output).
func (c *Client) ListRaw(ctx context.Context, coll Collection, f Filter, o ListOptions) (Page[json.RawMessage], error) {
	return list[json.RawMessage](ctx, c, "/v1/"+string(coll), f, o)
}

// RawPages returns the PageFunc of a collection for All and Collect.
func (c *Client) RawPages(coll Collection, f Filter) PageFunc[json.RawMessage] {
	return func(ctx context.Context, cursor string) (Page[json.RawMessage], error) {
		return c.ListRaw(ctx, coll, f, ListOptions{Limit: 500, Cursor: cursor})
	}
}

func pages[T any](c *Client, path string, f Filter) PageFunc[T] {
	return func(ctx context.Context, cursor string) (Page[T], error) {
		return list[T](ctx, c, path, f, ListOptions{Limit: 500, Cursor: cursor})
	}
}

func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var out T
	err := c.do(ctx, request{method: http.MethodGet, path: path}, &out)
	return out, err
}

// Tenants (admin key only).

// CreateTenant creates a tenant.
func (c *Client) CreateTenant(ctx context.Context, name string, opts ...CallOption) (Tenant, error) {
	var t Tenant
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/tenants", body: map[string]string{"name": name}, idempotent: true, opts: opts}, &t)
	if err != nil {
		return Tenant{}, fmt.Errorf("creating tenant %q: %w", name, err)
	}
	return t, nil
}

// ListTenants lists one page of tenants.
func (c *Client) ListTenants(ctx context.Context, o ListOptions) (Page[Tenant], error) {
	return list[Tenant](ctx, c, "/v1/tenants", Filter{}, o)
}

// AllTenants yields every tenant.
func (c *Client) AllTenants(ctx context.Context) iter.Seq2[Tenant, error] {
	return All(ctx, pages[Tenant](c, "/v1/tenants", Filter{}))
}

// API keys (admin key or tenant admin).

// CreateAPIKey creates a key with role in tenant; the secret is in the
// answer and nowhere else.
func (c *Client) CreateAPIKey(ctx context.Context, tenant uuid.UUID, name, role string, opts ...CallOption) (CreatedAPIKey, error) {
	var k CreatedAPIKey
	err := c.do(ctx, request{
		method: http.MethodPost, path: "/v1/tenants/" + tenant.String() + "/api-keys",
		body: map[string]string{"name": name, "role": role}, idempotent: true, opts: opts,
	}, &k)
	if err != nil {
		return CreatedAPIKey{}, fmt.Errorf("creating api key %q: %w", name, err)
	}
	return k, nil
}

// ListAPIKeys lists one page of a tenant's keys.
func (c *Client) ListAPIKeys(ctx context.Context, tenant uuid.UUID, o ListOptions) (Page[APIKey], error) {
	return list[APIKey](ctx, c, "/v1/tenants/"+tenant.String()+"/api-keys", Filter{}, o)
}

// DeleteAPIKey deletes a key; it stops working at once.
func (c *Client) DeleteAPIKey(ctx context.Context, tenant, id uuid.UUID) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/tenants/" + tenant.String() + "/api-keys/" + id.String()}, nil); err != nil {
		return fmt.Errorf("deleting api key %s: %w", id, err)
	}
	return nil
}

// Sites.

// CreateSite creates a site.
func (c *Client) CreateSite(ctx context.Context, r CreateSiteRequest, opts ...CallOption) (Site, error) {
	var s Site
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sites", body: r, idempotent: true, opts: opts}, &s); err != nil {
		return Site{}, fmt.Errorf("creating site %q: %w", r.Name, err)
	}
	return s, nil
}

// ListSites lists one page of sites.
func (c *Client) ListSites(ctx context.Context, o ListOptions) (Page[Site], error) {
	return list[Site](ctx, c, "/v1/sites", Filter{}, o)
}

// AllSites yields every site.
func (c *Client) AllSites(ctx context.Context) iter.Seq2[Site, error] {
	return All(ctx, pages[Site](c, "/v1/sites", Filter{}))
}

// GetSite gets one site.
func (c *Client) GetSite(ctx context.Context, id uuid.UUID) (Site, error) {
	s, err := get[Site](ctx, c, "/v1/sites/"+id.String())
	if err != nil {
		return Site{}, fmt.Errorf("getting site %s: %w", id, err)
	}
	return s, nil
}

// UpdateSite changes the fields set in r.
func (c *Client) UpdateSite(ctx context.Context, id uuid.UUID, r UpdateSiteRequest) (Site, error) {
	var s Site
	if err := c.do(ctx, request{method: http.MethodPatch, path: "/v1/sites/" + id.String(), body: r}, &s); err != nil {
		return Site{}, fmt.Errorf("updating site %s: %w", id, err)
	}
	return s, nil
}

// DeleteSite deletes a site without hosts or VMs (ErrConflict otherwise).
func (c *Client) DeleteSite(ctx context.Context, id uuid.UUID) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/sites/" + id.String()}, nil); err != nil {
		return fmt.Errorf("deleting site %s: %w", id, err)
	}
	return nil
}

// CreateEnrollmentToken issues a token agents enroll into site with.
func (c *Client) CreateEnrollmentToken(ctx context.Context, site uuid.UUID, r CreateEnrollmentTokenRequest, opts ...CallOption) (EnrollmentToken, error) {
	var t EnrollmentToken
	err := c.do(ctx, request{
		method: http.MethodPost, path: "/v1/sites/" + site.String() + "/enrollment-tokens",
		body: r, idempotent: true, opts: opts,
	}, &t)
	if err != nil {
		return EnrollmentToken{}, fmt.Errorf("creating enrollment token for site %s: %w", site, err)
	}
	return t, nil
}

// Hosts and agents.

// ListHosts lists one page of hosts (f.SiteID narrows to one site).
func (c *Client) ListHosts(ctx context.Context, f Filter, o ListOptions) (Page[Host], error) {
	return list[Host](ctx, c, "/v1/hosts", Filter{SiteID: f.SiteID}, o)
}

// AllHosts yields every host matching f.
func (c *Client) AllHosts(ctx context.Context, f Filter) iter.Seq2[Host, error] {
	return All(ctx, pages[Host](c, "/v1/hosts", Filter{SiteID: f.SiteID}))
}

// GetHost gets one host.
func (c *Client) GetHost(ctx context.Context, id uuid.UUID) (Host, error) {
	h, err := get[Host](ctx, c, "/v1/hosts/"+id.String())
	if err != nil {
		return Host{}, fmt.Errorf("getting host %s: %w", id, err)
	}
	return h, nil
}

// ListAgents lists one page of agents.
func (c *Client) ListAgents(ctx context.Context, o ListOptions) (Page[Agent], error) {
	return list[Agent](ctx, c, "/v1/agents", Filter{}, o)
}

// AllAgents yields every agent.
func (c *Client) AllAgents(ctx context.Context) iter.Seq2[Agent, error] {
	return All(ctx, pages[Agent](c, "/v1/agents", Filter{}))
}

// RevokeAgent revokes an agent: its session is closed and its
// certificate refused from now on.
func (c *Client) RevokeAgent(ctx context.Context, id uuid.UUID) (Agent, error) {
	var a Agent
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/agents/" + id.String() + "/revoke"}, &a); err != nil {
		return Agent{}, fmt.Errorf("revoking agent %s: %w", id, err)
	}
	return a, nil
}

// VMs.

// ListVMs lists one page of VMs (f.SiteID, f.HostID, f.IncludeDeleted).
func (c *Client) ListVMs(ctx context.Context, f Filter, o ListOptions) (Page[VM], error) {
	f.Status = ""
	return list[VM](ctx, c, "/v1/vms", f, o)
}

// AllVMs yields every VM matching f.
func (c *Client) AllVMs(ctx context.Context, f Filter) iter.Seq2[VM, error] {
	f.Status = ""
	return All(ctx, pages[VM](c, "/v1/vms", f))
}

// GetVM gets one VM.
func (c *Client) GetVM(ctx context.Context, id uuid.UUID) (VM, error) {
	v, err := get[VM](ctx, c, "/v1/vms/"+id.String())
	if err != nil {
		return VM{}, fmt.Errorf("getting vm %s: %w", id, err)
	}
	return v, nil
}

// CreateVM creates a VM (booted unless r.Start is false).
func (c *Client) CreateVM(ctx context.Context, r CreateVMRequest, opts ...CallOption) (CreatedVM, error) {
	var v CreatedVM
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/vms", body: r, idempotent: true, opts: opts}, &v); err != nil {
		return CreatedVM{}, fmt.Errorf("creating vm %q: %w", r.Name, err)
	}
	return v, nil
}

// UnmarshalJSON accepts both a VM object (optionally with a "plan" field)
// and a {"vm":…,"plan":…} envelope, so the client does not depend on
// which of the two the server chose.
func (v *CreatedVM) UnmarshalJSON(data []byte) error {
	var env struct {
		VM   *VM   `json:"vm"`
		Plan *Plan `json:"plan"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return err
	}
	if env.VM != nil {
		v.VM, v.Plan = *env.VM, env.Plan
		return nil
	}
	if err := json.Unmarshal(data, &v.VM); err != nil {
		return err
	}
	v.Plan = env.Plan
	return nil
}

// StartVM, StopVM, RebootVM and DeleteVM each create a plan and answer it
// (202): the change happens when the host's agent runs the plan.

// StartVM boots a VM.
func (c *Client) StartVM(ctx context.Context, id uuid.UUID, opts ...CallOption) (Plan, error) {
	return c.vmAction(ctx, id, "start", opts)
}

// StopVM shuts a VM down.
func (c *Client) StopVM(ctx context.Context, id uuid.UUID, opts ...CallOption) (Plan, error) {
	return c.vmAction(ctx, id, "stop", opts)
}

// RebootVM reboots a VM.
func (c *Client) RebootVM(ctx context.Context, id uuid.UUID, opts ...CallOption) (Plan, error) {
	return c.vmAction(ctx, id, "reboot", opts)
}

func (c *Client) vmAction(ctx context.Context, id uuid.UUID, action string, opts []CallOption) (Plan, error) {
	var p Plan
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/vms/" + id.String() + "/" + action, idempotent: true, opts: opts}, &p)
	if err != nil {
		return Plan{}, fmt.Errorf("%s vm %s: %w", actionGerund[action], id, err)
	}
	return p, nil
}

var actionGerund = map[string]string{"start": "starting", "stop": "stopping", "reboot": "rebooting"}

// DeleteVM deletes a VM.
func (c *Client) DeleteVM(ctx context.Context, id uuid.UUID) (Plan, error) {
	var p Plan
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/vms/" + id.String()}, &p); err != nil {
		return Plan{}, fmt.Errorf("deleting vm %s: %w", id, err)
	}
	return p, nil
}

// Plans and executions.

// CreatePlan submits a raw plan of actions for a host of site.
func (c *Client) CreatePlan(ctx context.Context, site uuid.UUID, r CreatePlanRequest, opts ...CallOption) (Plan, error) {
	var p Plan
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sites/" + site.String() + "/plans", body: r, idempotent: true, opts: opts}, &p)
	if err != nil {
		return Plan{}, fmt.Errorf("creating plan for site %s: %w", site, err)
	}
	return p, nil
}

// ListPlans lists one page of plans (f.SiteID, f.Status).
func (c *Client) ListPlans(ctx context.Context, f Filter, o ListOptions) (Page[Plan], error) {
	return list[Plan](ctx, c, "/v1/plans", Filter{SiteID: f.SiteID, Status: f.Status}, o)
}

// AllPlans yields every plan matching f.
func (c *Client) AllPlans(ctx context.Context, f Filter) iter.Seq2[Plan, error] {
	return All(ctx, pages[Plan](c, "/v1/plans", Filter{SiteID: f.SiteID, Status: f.Status}))
}

// GetPlan gets one plan with its actions.
func (c *Client) GetPlan(ctx context.Context, id uuid.UUID) (Plan, error) {
	p, err := get[Plan](ctx, c, "/v1/plans/"+id.String())
	if err != nil {
		return Plan{}, fmt.Errorf("getting plan %s: %w", id, err)
	}
	return p, nil
}

// GetExecution gets one execution.
func (c *Client) GetExecution(ctx context.Context, id uuid.UUID) (Execution, error) {
	e, err := get[Execution](ctx, c, "/v1/executions/"+id.String())
	if err != nil {
		return Execution{}, fmt.Errorf("getting execution %s: %w", id, err)
	}
	return e, nil
}

// LogListOptions selects a page of an execution's log: lines with a seq
// above After, or after Cursor.
type LogListOptions struct {
	After  int64
	Limit  int
	Cursor string
}

// ListLogs lists one page of an execution's log lines.
func (c *Client) ListLogs(ctx context.Context, exec uuid.UUID, o LogListOptions) (Page[LogLine], error) {
	q := ListOptions{Limit: o.Limit, Cursor: o.Cursor}.values()
	if o.After > 0 {
		q.Set("after", strconv.FormatInt(o.After, 10))
	}
	var p Page[LogLine]
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/executions/" + exec.String() + "/logs", query: q}, &p); err != nil {
		return Page[LogLine]{}, fmt.Errorf("listing logs of execution %s: %w", exec, err)
	}
	if p.Items == nil {
		p.Items = []LogLine{}
	}
	return p, nil
}

// AllLogs yields every stored log line of an execution after seq after.
func (c *Client) AllLogs(ctx context.Context, exec uuid.UUID, after int64) iter.Seq2[LogLine, error] {
	return All(ctx, func(ctx context.Context, cursor string) (Page[LogLine], error) {
		return c.ListLogs(ctx, exec, LogListOptions{After: after, Limit: 500, Cursor: cursor})
	})
}

// Audit.

// ListAuditEvents lists one page of the tenant's audit log (tenant admin).
func (c *Client) ListAuditEvents(ctx context.Context, o ListOptions) (Page[AuditEvent], error) {
	return list[AuditEvent](ctx, c, "/v1/audit-events", Filter{}, o)
}

// AllAuditEvents yields the whole audit log.
func (c *Client) AllAuditEvents(ctx context.Context) iter.Seq2[AuditEvent, error] {
	return All(ctx, pages[AuditEvent](c, "/v1/audit-events", Filter{}))
}
