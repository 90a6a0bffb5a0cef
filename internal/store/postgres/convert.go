package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Column encodings: uuid.Nil is NULL for optional references; times are
// written in UTC truncated (not rounded, as PostgreSQL would) to
// microseconds, so what a caller wrote is what it reads back; JSON is
// written as text cast to jsonb and read back compacted.

// rowScanner is a pgx.Row or pgx.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// ts normalises a time for storage and for return values.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func fromNullTS(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// nullID maps uuid.Nil to NULL for optional references and filters.
func nullID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

func fromNullID(u pgtype.UUID) uuid.UUID {
	if !u.Valid {
		return uuid.Nil
	}
	return uuid.UUID(u.Bytes)
}

// jsonObject compacts raw for storage; empty means "{}".
func jsonObject(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "{}", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("%w: malformed JSON: %w", ErrInvalidArgument, err)
	}
	return buf.String(), nil
}

// nullJSONObject is jsonObject that keeps nil as NULL ("leave unchanged").
func nullJSONObject(raw json.RawMessage) (*string, error) {
	if raw == nil {
		return nil, nil
	}
	s, err := jsonObject(raw)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// rawJSON compacts a jsonb column as read (PostgreSQL renders jsonb with
// spaces), "{}" when empty.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		// jsonb is valid JSON by construction; keep it as read.
		return json.RawMessage(b)
	}
	return json.RawMessage(buf.Bytes())
}

// groups makes nil an empty array: a nil []string would be written NULL.
func groups(g []string) []string {
	if g == nil {
		return []string{}
	}
	return g
}

// pageLimit turns a Page limit into a query limit.
func pageLimit(limit int) int {
	if limit <= 0 {
		return defaultPageLimit
	}
	return limit
}

// trimPage cuts a page fetched with limit+1 rows down to limit and reports
// whether more exist.
func trimPage[T any](items []T, limit int) ([]T, bool) {
	if len(items) > limit {
		return items[:limit], true
	}
	return items, false
}

// collect scans every row of rows with scan.
func collect[T any](rows pgx.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

func scanTenant(r rowScanner) (store.Tenant, error) {
	var t store.Tenant
	if err := r.Scan(&t.ID, &t.Name, &t.CreatedAt); err != nil {
		return t, translate(err)
	}
	t.CreatedAt = ts(t.CreatedAt)
	return t, nil
}

func scanAPIKey(r rowScanner) (store.APIKey, error) {
	var k store.APIKey
	if err := r.Scan(&k.ID, &k.TenantID, &k.Name, &k.Role, &k.Prefix, &k.Hash, &k.CreatedAt, &k.LastUsedAt); err != nil {
		return k, translate(err)
	}
	k.CreatedAt = ts(k.CreatedAt)
	k.LastUsedAt = fromNullTS(k.LastUsedAt)
	return k, nil
}

func scanSite(r rowScanner) (store.Site, error) {
	var s store.Site
	if err := r.Scan(&s.ID, &s.TenantID, &s.Name, &s.Description, &s.NetBirdEnabled, &s.NetBirdGroups,
		&s.CreatedAt, &s.UpdatedAt); err != nil {
		return s, translate(err)
	}
	s.NetBirdGroups = groups(s.NetBirdGroups)
	s.CreatedAt = ts(s.CreatedAt)
	s.UpdatedAt = ts(s.UpdatedAt)
	return s, nil
}

func scanToken(r rowScanner) (store.EnrollmentToken, error) {
	var t store.EnrollmentToken
	if err := r.Scan(&t.ID, &t.TenantID, &t.SiteID, &t.Hash, &t.ExpiresAt, &t.MaxUses, &t.Uses, &t.CreatedAt,
		&t.NetBirdSetupKeyID, &t.NetBirdSetupKeySealed); err != nil {
		return t, translate(err)
	}
	t.ExpiresAt = ts(t.ExpiresAt)
	t.CreatedAt = ts(t.CreatedAt)
	if len(t.NetBirdSetupKeySealed) == 0 {
		t.NetBirdSetupKeySealed = nil
	}
	return t, nil
}

// sealedBytes binds a missing sealed setup key as an empty value: the
// column is NOT NULL, and nil would bind as NULL.
func sealedBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func scanAgent(r rowScanner) (store.Agent, error) {
	var a store.Agent
	if err := r.Scan(&a.ID, &a.TenantID, &a.SiteID, &a.HostID, &a.Status, &a.Version, &a.CertSerial,
		&a.CertExpiresAt, &a.Revoked, &a.RevokedAt, &a.LastSeenAt, &a.CreatedAt); err != nil {
		return a, translate(err)
	}
	a.CertExpiresAt = ts(a.CertExpiresAt)
	a.RevokedAt = fromNullTS(a.RevokedAt)
	a.LastSeenAt = fromNullTS(a.LastSeenAt)
	a.CreatedAt = ts(a.CreatedAt)
	return a, nil
}

func scanHost(r rowScanner) (store.Host, error) {
	var h store.Host
	var facts, netbird, usage []byte
	if err := r.Scan(&h.ID, &h.TenantID, &h.SiteID, &h.AgentID, &h.Hostname, &h.Online, &h.LastSeenAt,
		&facts, &netbird, &usage, &h.CreatedAt, &h.UpdatedAt); err != nil {
		return h, translate(err)
	}
	h.LastSeenAt = fromNullTS(h.LastSeenAt)
	h.Facts = rawJSON(facts)
	h.NetBird = rawJSON(netbird)
	h.Usage = rawJSON(usage)
	h.CreatedAt = ts(h.CreatedAt)
	h.UpdatedAt = ts(h.UpdatedAt)
	return h, nil
}

func scanVM(r rowScanner) (store.VM, error) {
	var v store.VM
	var host pgtype.UUID
	var spec []byte
	if err := r.Scan(&v.ID, &v.TenantID, &v.SiteID, &host, &v.Name, &v.DesiredState, &v.ActualState,
		&v.VCPUs, &v.MemoryMiB, &spec, &v.Error, &v.CreatedAt, &v.UpdatedAt); err != nil {
		return v, translate(err)
	}
	v.HostID = fromNullID(host)
	v.Spec = rawJSON(spec)
	v.CreatedAt = ts(v.CreatedAt)
	v.UpdatedAt = ts(v.UpdatedAt)
	return v, nil
}

func scanPlan(r rowScanner) (store.Plan, error) {
	var p store.Plan
	if err := r.Scan(&p.ID, &p.TenantID, &p.SiteID, &p.HostID, &p.AgentID, &p.Status, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return p, translate(err)
	}
	p.CreatedAt = ts(p.CreatedAt)
	p.UpdatedAt = ts(p.UpdatedAt)
	return p, nil
}

func scanAction(r rowScanner) (store.PlanAction, error) {
	var a store.PlanAction
	var vm pgtype.UUID
	var params []byte
	if err := r.Scan(&a.ID, &a.PlanID, &a.Seq, &a.Type, &vm, &params, &a.Status, &a.ExecutionID,
		&a.Error, &a.UpdatedAt); err != nil {
		return a, translate(err)
	}
	a.VMID = fromNullID(vm)
	a.Params = rawJSON(params)
	a.UpdatedAt = ts(a.UpdatedAt)
	return a, nil
}

func scanExecution(r rowScanner) (store.Execution, error) {
	var e store.Execution
	if err := r.Scan(&e.ID, &e.TenantID, &e.PlanID, &e.ActionID, &e.Status, &e.Error, &e.StartedAt,
		&e.FinishedAt, &e.CreatedAt); err != nil {
		return e, translate(err)
	}
	e.StartedAt = fromNullTS(e.StartedAt)
	e.FinishedAt = fromNullTS(e.FinishedAt)
	e.CreatedAt = ts(e.CreatedAt)
	return e, nil
}

func scanLogLine(r rowScanner) (store.LogLine, error) {
	var l store.LogLine
	if err := r.Scan(&l.ExecutionID, &l.Seq, &l.At, &l.Stream, &l.Message); err != nil {
		return l, translate(err)
	}
	l.At = ts(l.At)
	return l, nil
}

func scanAudit(r rowScanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	var tenant pgtype.UUID
	if err := r.Scan(&e.ID, &tenant, &e.Actor, &e.Action, &e.Target, &e.Result, &e.RequestID, &e.At); err != nil {
		return e, translate(err)
	}
	e.TenantID = fromNullID(tenant)
	e.At = ts(e.At)
	return e, nil
}

func scanIdempotency(r rowScanner) (store.IdempotencyRecord, error) {
	var rec store.IdempotencyRecord
	var holder pgtype.UUID
	var until *time.Time
	if err := r.Scan(&rec.TenantID, &rec.Route, &rec.Key, &rec.Fingerprint, &rec.Status, &rec.Response,
		&rec.CreatedAt, &holder, &until); err != nil {
		return rec, translate(err)
	}
	rec.CreatedAt = ts(rec.CreatedAt)
	rec.Holder = fromNullID(holder)
	if until != nil {
		rec.ReservedUntil = ts(*until)
	}
	return rec, nil
}
