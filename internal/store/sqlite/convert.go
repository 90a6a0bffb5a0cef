package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/store"
)

// Column encodings: ids as canonical lowercase text, times as unix
// microseconds (so reads come back truncated to microseconds, like
// PostgreSQL), booleans as 0/1, JSON as compact text.

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// nullID maps uuid.Nil to NULL for optional references.
func nullID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}

// afterKey is the keyset cursor: every id sorts after "".
func afterKey(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

// filterID is "" for a zero filter field, which the queries read as "any".
func filterID(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func fromNullMicros(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
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
func nullJSONObject(raw json.RawMessage) (any, error) {
	if raw == nil {
		return nil, nil
	}
	return jsonObject(raw)
}

// rawJSON returns a stored JSON column, "{}" when empty.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(s)
}

// pageLimit turns a Page limit into a query limit. One row more than asked
// is fetched to learn whether another page exists.
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
func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer func() { _ = rows.Close() }()
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
	var created int64
	if err := r.Scan(&t.ID, &t.Name, &created); err != nil {
		return t, translate(err)
	}
	t.CreatedAt = fromMicros(created)
	return t, nil
}

func scanAPIKey(r rowScanner) (store.APIKey, error) {
	var k store.APIKey
	var created int64
	var used sql.NullInt64
	if err := r.Scan(&k.ID, &k.TenantID, &k.Name, &k.Role, &k.Prefix, &k.Hash, &created, &used); err != nil {
		return k, translate(err)
	}
	k.CreatedAt = fromMicros(created)
	k.LastUsedAt = fromNullMicros(used)
	return k, nil
}

func scanSite(r rowScanner) (store.Site, error) {
	var s store.Site
	var enabled, created, updated int64
	var groups string
	if err := r.Scan(&s.ID, &s.TenantID, &s.Name, &s.Description, &enabled, &groups, &created, &updated); err != nil {
		return s, translate(err)
	}
	s.NetBirdEnabled = enabled != 0
	if err := json.Unmarshal([]byte(groups), &s.NetBirdGroups); err != nil {
		return s, fmt.Errorf("decoding netbird groups of site %s: %w", s.ID, err)
	}
	s.CreatedAt = fromMicros(created)
	s.UpdatedAt = fromMicros(updated)
	return s, nil
}

// groupsJSON encodes NetBird groups; nil and empty are both "[]".
func groupsJSON(groups []string) (string, error) {
	if len(groups) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(groups)
	if err != nil {
		return "", fmt.Errorf("encoding netbird groups: %w", err)
	}
	return string(b), nil
}

func scanToken(r rowScanner) (store.EnrollmentToken, error) {
	var t store.EnrollmentToken
	var expires, created int64
	if err := r.Scan(&t.ID, &t.TenantID, &t.SiteID, &t.Hash, &expires, &t.MaxUses, &t.Uses, &created, &t.NetBirdSetupKeyID,
		&t.NetBirdSetupKeySealed); err != nil {
		return t, translate(err)
	}
	t.ExpiresAt = fromMicros(expires)
	t.CreatedAt = fromMicros(created)
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
	var certExp, created, revoked int64
	var revokedAt, seen sql.NullInt64
	if err := r.Scan(&a.ID, &a.TenantID, &a.SiteID, &a.HostID, &a.Status, &a.Version, &a.CertSerial,
		&certExp, &revoked, &revokedAt, &seen, &created); err != nil {
		return a, translate(err)
	}
	a.CertExpiresAt = fromMicros(certExp)
	a.Revoked = revoked != 0
	a.RevokedAt = fromNullMicros(revokedAt)
	a.LastSeenAt = fromNullMicros(seen)
	a.CreatedAt = fromMicros(created)
	return a, nil
}

func scanHost(r rowScanner) (store.Host, error) {
	var h store.Host
	var online, created, updated int64
	var seen sql.NullInt64
	var facts, netbird, usage string
	if err := r.Scan(&h.ID, &h.TenantID, &h.SiteID, &h.AgentID, &h.Hostname, &online, &seen,
		&facts, &netbird, &usage, &created, &updated); err != nil {
		return h, translate(err)
	}
	h.Online = online != 0
	h.LastSeenAt = fromNullMicros(seen)
	h.Facts = rawJSON(facts)
	h.NetBird = rawJSON(netbird)
	h.Usage = rawJSON(usage)
	h.CreatedAt = fromMicros(created)
	h.UpdatedAt = fromMicros(updated)
	return h, nil
}

func scanVM(r rowScanner) (store.VM, error) {
	var v store.VM
	var created, updated int64
	var spec string
	// A NULL host_id scans as uuid.Nil.
	if err := r.Scan(&v.ID, &v.TenantID, &v.SiteID, &v.HostID, &v.Name, &v.DesiredState, &v.ActualState,
		&v.VCPUs, &v.MemoryMiB, &spec, &v.Error, &created, &updated); err != nil {
		return v, translate(err)
	}
	v.Spec = rawJSON(spec)
	v.CreatedAt = fromMicros(created)
	v.UpdatedAt = fromMicros(updated)
	return v, nil
}

func scanPlan(r rowScanner) (store.Plan, error) {
	var p store.Plan
	var created, updated int64
	if err := r.Scan(&p.ID, &p.TenantID, &p.SiteID, &p.HostID, &p.AgentID, &p.Status, &created, &updated); err != nil {
		return p, translate(err)
	}
	p.CreatedAt = fromMicros(created)
	p.UpdatedAt = fromMicros(updated)
	return p, nil
}

func scanAction(r rowScanner) (store.PlanAction, error) {
	var a store.PlanAction
	var updated int64
	var params string
	if err := r.Scan(&a.ID, &a.PlanID, &a.Seq, &a.Type, &a.VMID, &params, &a.Status, &a.ExecutionID,
		&a.Error, &updated); err != nil {
		return a, translate(err)
	}
	a.Params = rawJSON(params)
	a.UpdatedAt = fromMicros(updated)
	return a, nil
}

func scanExecution(r rowScanner) (store.Execution, error) {
	var e store.Execution
	var created int64
	var started, finished sql.NullInt64
	if err := r.Scan(&e.ID, &e.TenantID, &e.PlanID, &e.ActionID, &e.Status, &e.Error, &started, &finished, &created); err != nil {
		return e, translate(err)
	}
	e.StartedAt = fromNullMicros(started)
	e.FinishedAt = fromNullMicros(finished)
	e.CreatedAt = fromMicros(created)
	return e, nil
}

func scanLogLine(r rowScanner) (store.LogLine, error) {
	var l store.LogLine
	var at int64
	if err := r.Scan(&l.ExecutionID, &l.Seq, &at, &l.Stream, &l.Message); err != nil {
		return l, translate(err)
	}
	l.At = fromMicros(at)
	return l, nil
}

func scanAudit(r rowScanner) (store.AuditEvent, error) {
	var e store.AuditEvent
	var at int64
	// A NULL tenant_id (admin scope) scans as uuid.Nil.
	if err := r.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.Target, &e.Result, &e.RequestID, &at); err != nil {
		return e, translate(err)
	}
	e.At = fromMicros(at)
	return e, nil
}

func scanIdempotency(r rowScanner) (store.IdempotencyRecord, error) {
	var rec store.IdempotencyRecord
	var created int64
	var holder uuid.NullUUID
	var until sql.NullInt64
	if err := r.Scan(&rec.TenantID, &rec.Route, &rec.Key, &rec.Fingerprint, &rec.Status, &rec.Response, &created,
		&holder, &until); err != nil {
		return rec, translate(err)
	}
	rec.CreatedAt = fromMicros(created)
	if holder.Valid {
		rec.Holder = holder.UUID
	}
	if until.Valid {
		rec.ReservedUntil = fromMicros(until.Int64)
	}
	return rec, nil
}
