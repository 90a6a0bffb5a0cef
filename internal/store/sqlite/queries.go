package sqlite

import "strings"

// Every statement the store runs lives here, so the SQL of the whole store
// can be read (and reviewed against the schema) in one place. Parameters
// use ?N so one value can appear several times.

// Column lists shared by the statements that read a whole row.
const (
	tenantCols = `id, name, created_at`
	apiKeyCols = `id, tenant_id, name, role, prefix, hash, created_at, last_used_at`
	siteCols   = `id, tenant_id, name, description, netbird_enabled, netbird_groups, created_at, updated_at`
	tokenCols  = `id, tenant_id, site_id, hash, expires_at, max_uses, uses, created_at, netbird_setup_key_id, netbird_setup_key_sealed`
	agentCols  = `id, tenant_id, site_id, host_id, status, version, cert_serial, cert_expires_at, revoked, revoked_at, last_seen_at, created_at`
	hostCols   = `id, tenant_id, site_id, agent_id, hostname, online, last_seen_at, facts, netbird, usage, created_at, updated_at`
	vmCols     = `id, tenant_id, site_id, host_id, name, desired_state, actual_state, vcpus, memory_mib, spec, error, created_at, updated_at`
	planCols   = `id, tenant_id, site_id, host_id, agent_id, status, created_at, updated_at`
	actionCols = `id, plan_id, seq, type, vm_id, params, status, execution_id, error, updated_at`
	execCols   = `id, tenant_id, plan_id, action_id, status, error, started_at, finished_at, created_at`
	auditCols  = `id, tenant_id, actor, action, target, result, request_id, at`
	idemCols   = `tenant_id, route, key, fingerprint, status, response, created_at, holder, reserved_until`
)

// Tenants.
const (
	qInsertTenant = `INSERT INTO tenants (` + tenantCols + `) VALUES (?1, ?2, ?3)`
	qGetTenant    = `SELECT ` + tenantCols + ` FROM tenants WHERE id = ?1`
	qListTenants  = `SELECT ` + tenantCols + ` FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2`
)

// API keys.
const (
	qInsertAPIKey    = `INSERT INTO api_keys (` + apiKeyCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`
	qGetAPIKeyByHash = `SELECT ` + apiKeyCols + ` FROM api_keys WHERE hash = ?1`
	qListAPIKeys     = `SELECT ` + apiKeyCols + ` FROM api_keys WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3`
	qDeleteAPIKey    = `DELETE FROM api_keys WHERE tenant_id = ?1 AND id = ?2`
	qTouchAPIKey     = `UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1`
)

// Sites.
const (
	qInsertSite = `INSERT INTO sites (` + siteCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`
	qGetSite    = `SELECT ` + siteCols + ` FROM sites WHERE tenant_id = ?1 AND id = ?2`
	qListSites  = `SELECT ` + siteCols + ` FROM sites WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3`
	// A NULL parameter leaves its column unchanged.
	qUpdateSite = `UPDATE sites SET
		name = COALESCE(?3, name),
		description = COALESCE(?4, description),
		netbird_enabled = COALESCE(?5, netbird_enabled),
		netbird_groups = COALESCE(?6, netbird_groups),
		updated_at = ?7
		WHERE tenant_id = ?1 AND id = ?2
		RETURNING ` + siteCols
	qSiteInUse = `SELECT EXISTS (SELECT 1 FROM hosts WHERE tenant_id = ?1 AND site_id = ?2)
		OR EXISTS (SELECT 1 FROM agents WHERE tenant_id = ?1 AND site_id = ?2)
		OR EXISTS (SELECT 1 FROM vms WHERE tenant_id = ?1 AND site_id = ?2 AND actual_state <> 'deleted')`
	qDeleteSite = `DELETE FROM sites WHERE tenant_id = ?1 AND id = ?2`
)

// Enrollment tokens.
const (
	qInsertToken = `INSERT INTO enrollment_tokens (` + tokenCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`
	// Taking a use is one conditional UPDATE on the single write connection,
	// so two enrollments racing for the last use cannot both succeed.
	qConsumeToken = `UPDATE enrollment_tokens SET uses = uses + 1
		WHERE hash = ?1 AND uses < max_uses AND expires_at > ?2
		RETURNING ` + tokenCols
	qTokenByHash = `SELECT ` + tokenCols + ` FROM enrollment_tokens
		WHERE hash = ?1 AND uses < max_uses AND expires_at > ?2`
	qTokensWithStaleSetupKeys = `SELECT ` + tokenCols + ` FROM enrollment_tokens
		WHERE netbird_setup_key_id <> ''
			AND ((uses = 0 AND expires_at < ?1) OR (uses > 0 AND expires_at < ?2))
		ORDER BY expires_at, id LIMIT ?3`
	qClearTokenSetupKey = `UPDATE enrollment_tokens SET netbird_setup_key_id = '', netbird_setup_key_sealed = X'' WHERE id = ?1`
)

// Agents.
const (
	qInsertAgent    = `INSERT INTO agents (` + agentCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)`
	qGetAgent       = `SELECT ` + agentCols + ` FROM agents WHERE id = ?1`
	qGetTenantAgent = `SELECT ` + agentCols + ` FROM agents WHERE tenant_id = ?1 AND id = ?2`
	qListAgents     = `SELECT ` + agentCols + ` FROM agents WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3`
	// A second revocation keeps the time of the first.
	qRevokeAgent = `UPDATE agents SET revoked = 1, status = 'revoked', revoked_at = COALESCE(revoked_at, ?3)
		WHERE tenant_id = ?1 AND id = ?2
		RETURNING ` + agentCols
	qHostOfflineByAgent = `UPDATE hosts SET online = 0, updated_at = ?2 WHERE agent_id = ?1`
	qRotateAgentCert    = `UPDATE agents SET cert_serial = ?2, cert_expires_at = ?3 WHERE id = ?1`
	// A revoked agent stays revoked whatever its session does.
	qSetAgentOnline = `UPDATE agents SET
		status = CASE WHEN revoked = 1 THEN 'revoked' WHEN ?2 = 1 THEN 'online' ELSE 'offline' END,
		version = CASE WHEN ?3 = '' THEN version ELSE ?3 END,
		last_seen_at = ?4
		WHERE id = ?1
		RETURNING revoked`
	qSetHostOnline   = `UPDATE hosts SET online = ?2, last_seen_at = ?3, updated_at = ?3 WHERE agent_id = ?1`
	qMarkStaleAgents = `UPDATE agents SET status = 'offline'
		WHERE status = 'online' AND COALESCE(last_seen_at, 0) < ?1
		RETURNING ` + agentCols
	qVMsUnknownByHost = `UPDATE vms SET actual_state = 'unknown', updated_at = ?2
		WHERE host_id = ?1 AND actual_state NOT IN ('deleted', 'unknown')`
)

// Hosts.
const (
	qInsertHost = `INSERT INTO hosts (` + hostCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)`
	qGetHost    = `SELECT ` + hostCols + ` FROM hosts WHERE tenant_id = ?1 AND id = ?2`
	qListHosts  = `SELECT ` + hostCols + ` FROM hosts
		WHERE tenant_id = ?1 AND (?2 = '' OR site_id = ?2) AND id > ?3 ORDER BY id LIMIT ?4`
	// A heartbeat proves the session is alive, so it also marks the agent
	// and host online, unless the agent was revoked meanwhile. The agent is
	// updated first and only where it owns the host, so a heartbeat naming
	// another agent's host (or from a revoked agent) changes nothing.
	// last_seen_at never moves backwards, so a late batch cannot undo a
	// newer one.
	qHeartbeatAgent = `UPDATE agents SET
		last_seen_at = MAX(COALESCE(last_seen_at, 0), ?3),
		status = 'online'
		WHERE id = ?1 AND host_id = ?2 AND revoked = 0`
	// Run only after qHeartbeatAgent matched. NULL facts, NetBird or
	// usage keep the stored value.
	qHeartbeatHost = `UPDATE hosts SET
		last_seen_at = MAX(COALESCE(last_seen_at, 0), ?2),
		online = 1,
		facts = COALESCE(?3, facts),
		netbird = COALESCE(?4, netbird),
		usage = COALESCE(?5, usage),
		updated_at = ?2
		WHERE id = ?1`
)

// VMs.
const (
	qInsertVM = `INSERT INTO vms (` + vmCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)`
	qGetVM    = `SELECT ` + vmCols + ` FROM vms WHERE tenant_id = ?1 AND id = ?2`
	qListVMs  = `SELECT ` + vmCols + ` FROM vms
		WHERE tenant_id = ?1
		AND (?2 = '' OR site_id = ?2)
		AND (?3 = '' OR host_id = ?3)
		AND (?4 = 1 OR actual_state <> 'deleted')
		AND id > ?5 ORDER BY id LIMIT ?6`
	qSetVMDesired = `UPDATE vms SET desired_state = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND id = ?2`
	// A deleted VM is a tombstone: a late report must not bring it back
	// (and take its name from a newer VM). Unchanged rows are not
	// rewritten, so steady-state heartbeats cost no writes, and RETURNING
	// yields exactly the VMs that changed.
	qReportVMState = `UPDATE vms SET actual_state = ?3, error = ?4, updated_at = ?5
		WHERE id = ?1 AND host_id = ?2 AND actual_state <> 'deleted'
		AND (actual_state <> ?3 OR error <> ?4)
		RETURNING ` + vmCols
	qCountVMsByHost = `SELECT h.id, COUNT(v.id) FROM hosts h
		LEFT JOIN vms v ON v.host_id = h.id AND v.actual_state <> 'deleted'
		WHERE h.tenant_id = ?1 AND h.site_id = ?2
		GROUP BY h.id`
)

// Plans, actions and executions.
const (
	qInsertPlan   = `INSERT INTO plans (` + planCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`
	qInsertAction = `INSERT INTO plan_actions (id, tenant_id, plan_id, seq, type, vm_id, params, status, execution_id, error, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`
	qInsertExecution = `INSERT INTO executions (` + execCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`
	qGetPlan         = `SELECT ` + planCols + ` FROM plans WHERE tenant_id = ?1 AND id = ?2`
	qGetPlanByID     = `SELECT ` + planCols + ` FROM plans WHERE id = ?1`
	qListPlans       = `SELECT ` + planCols + ` FROM plans
		WHERE tenant_id = ?1
		AND (?2 = '' OR site_id = ?2)
		AND (?3 = '' OR status = ?3)
		AND id > ?4 ORDER BY id LIMIT ?5`
	// ?1 is a JSON array of agent ids.
	qPendingPlansOf = `SELECT ` + planCols + ` FROM plans
		WHERE agent_id IN (SELECT value FROM json_each(?1)) AND status NOT IN ('succeeded', 'failed', 'cancelled')
		ORDER BY agent_id, id`
	qActionsOfPlan = `SELECT ` + actionCols + ` FROM plan_actions WHERE plan_id = ?1 ORDER BY seq`
	// ?1 is a JSON array of plan ids, so one statement loads the actions of
	// a whole page of plans.
	qActionsOfPlans = `SELECT ` + actionCols + ` FROM plan_actions
		WHERE plan_id IN (SELECT value FROM json_each(?1))
		ORDER BY plan_id, seq`
	// Scoped to the owning agent, so an agent cannot advance another's plan.
	qDispatchPlan = `UPDATE plans SET status = 'dispatched', updated_at = ?3
		WHERE id = ?1 AND agent_id = ?2 AND status = 'pending'`
	qDispatchActions = `UPDATE plan_actions SET status = 'dispatched', updated_at = ?2
		WHERE plan_id = ?1 AND status = 'pending'`
	qDispatchExecutions = `UPDATE executions SET status = 'dispatched'
		WHERE plan_id = ?1 AND status = 'pending'`
	qGetAgentPlan = `SELECT ` + planCols + ` FROM plans WHERE id = ?1 AND agent_id = ?2`
	// The action joined with its plan's owner, so a result from the wrong
	// agent finds nothing.
	qActionForAgent = `SELECT a.plan_id, a.status, a.vm_id, a.tenant_id FROM plan_actions a
		JOIN plans p ON p.id = a.plan_id
		WHERE a.id = ?1 AND p.agent_id = ?2`
	qUpdateAction    = `UPDATE plan_actions SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1`
	qUpdateExecution = `UPDATE executions SET status = ?2, error = ?3,
		started_at = COALESCE(started_at, ?4),
		finished_at = CASE WHEN ?5 = 1 THEN ?4 ELSE finished_at END
		WHERE action_id = ?1`
	qVMStateFromAction = `UPDATE vms SET actual_state = ?3, error = ?4, updated_at = ?5
		WHERE tenant_id = ?1 AND id = ?2 AND actual_state <> 'deleted'`
	qActionStatusCounts = `SELECT
		COUNT(*),
		COALESCE(SUM(status = 'succeeded'), 0),
		COALESCE(SUM(status = 'failed'), 0),
		COALESCE(SUM(status IN ('running', 'succeeded', 'cancelled')), 0)
		FROM plan_actions WHERE plan_id = ?1`
	qSetPlanStatus   = `UPDATE plans SET status = ?2, updated_at = ?3 WHERE id = ?1`
	qGetExecution    = `SELECT ` + execCols + ` FROM executions WHERE tenant_id = ?1 AND id = ?2`
	qExecutionAgent  = `SELECT p.agent_id FROM executions e JOIN plans p ON p.id = e.plan_id WHERE e.id = ?1`
	qExecutionExists = `SELECT EXISTS (SELECT 1 FROM executions WHERE tenant_id = ?1 AND id = ?2)`
)

// Execution logs.
const (
	// Retried batches overlap earlier ones; the primary key makes the
	// retry a no-op per line.
	// qInsertLogLinesPrefix and qLogLineValues build one multi-row insert
	// per chunk of lines (see insertLogLinesQuery).
	qInsertLogLinesPrefix = `INSERT OR IGNORE INTO execution_logs (execution_id, seq, at, stream, message) VALUES `
	qLogLineValues        = `(?, ?, ?, ?, ?)`
	qListLogLines         = `SELECT execution_id, seq, at, stream, message FROM execution_logs
		WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3`
)

// Audit events and idempotency records.
const (
	qInsertAudit = `INSERT INTO audit_events (` + auditCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`
	// IS matches NULL too: uuid.Nil lists the admin events.
	qListAudit = `SELECT ` + auditCols + ` FROM audit_events
		WHERE tenant_id IS ?1 AND id > ?2 ORDER BY id LIMIT ?3`
	qGetIdempotency = `SELECT ` + idemCols + ` FROM idempotency_keys WHERE tenant_id = ?1 AND route = ?2 AND key = ?3`
	// A reservation inserts the key, or takes over a reservation that
	// lapsed before ?5 (its request's replica died); an answer or a live
	// reservation stays, and then no row is returned.
	qReserveIdempotency = `INSERT INTO idempotency_keys (` + idemCols + `)
		VALUES (?1, ?2, ?3, ?4, 0, X'', ?5, ?6, ?7)
		ON CONFLICT (tenant_id, route, key) DO UPDATE SET
			fingerprint = excluded.fingerprint, status = 0, response = X'', created_at = excluded.created_at,
			holder = excluded.holder, reserved_until = excluded.reserved_until
		WHERE idempotency_keys.holder IS NOT NULL AND idempotency_keys.reserved_until < excluded.created_at
		RETURNING holder`
	qCompleteIdempotency = `UPDATE idempotency_keys SET status = ?5, response = ?6, holder = NULL, reserved_until = NULL
		WHERE tenant_id = ?1 AND route = ?2 AND key = ?3 AND holder = ?4`
	qReleaseIdempotency = `DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND route = ?2 AND key = ?3 AND holder = ?4`
)

// Multi-row log inserts: logChunkRows rows of logLineCols parameters stay
// far below SQLite's limit on bound parameters (32,766) while making a
// 5,000-line flush 20 statements instead of 5,000.
const (
	logChunkRows = 250
	logLineCols  = 5
)

// qInsertLogLinesChunk inserts exactly logChunkRows lines.
var qInsertLogLinesChunk = insertLogLinesQuery(logChunkRows)

// insertLogLinesQuery returns the insert of n log lines (n >= 1).
func insertLogLinesQuery(n int) string {
	var b strings.Builder
	b.Grow(len(qInsertLogLinesPrefix) + n*(len(qLogLineValues)+2))
	b.WriteString(qInsertLogLinesPrefix)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(qLogLineValues)
	}
	return b.String()
}
