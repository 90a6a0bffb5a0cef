package postgres

// Every statement the store runs lives here, so the SQL of the whole store
// can be read (and reviewed against migrations/postgres) in one place.
// Optional filters are NULL parameters; optional patch fields are NULL
// parameters that COALESCE keeps unchanged.

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
	logCols    = `execution_id, seq, at, stream, message`
)

// Tenants.
const (
	qInsertTenant = `INSERT INTO tenants (` + tenantCols + `) VALUES ($1, $2, $3)`
	qGetTenant    = `SELECT ` + tenantCols + ` FROM tenants WHERE id = $1`
	qListTenants  = `SELECT ` + tenantCols + ` FROM tenants WHERE id > $1 ORDER BY id LIMIT $2`
)

// API keys.
const (
	qInsertAPIKey    = `INSERT INTO api_keys (` + apiKeyCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qGetAPIKeyByHash = `SELECT ` + apiKeyCols + ` FROM api_keys WHERE hash = $1`
	qListAPIKeys     = `SELECT ` + apiKeyCols + ` FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`
	qDeleteAPIKey    = `DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2`
	qTouchAPIKey     = `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`
)

// Sites.
const (
	qInsertSite = `INSERT INTO sites (` + siteCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qGetSite    = `SELECT ` + siteCols + ` FROM sites WHERE tenant_id = $1 AND id = $2`
	qListSites  = `SELECT ` + siteCols + ` FROM sites WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`
	qUpdateSite = `UPDATE sites SET
		name = COALESCE($3::text, name),
		description = COALESCE($4::text, description),
		netbird_enabled = COALESCE($5::boolean, netbird_enabled),
		netbird_groups = COALESCE($6::text[], netbird_groups),
		updated_at = $7
		WHERE tenant_id = $1 AND id = $2
		RETURNING ` + siteCols
	// The emptiness check and the delete are one statement, so a host
	// enrolling meanwhile either blocks it or is refused by the foreign key.
	qDeleteSiteIfUnused = `DELETE FROM sites s WHERE s.tenant_id = $1 AND s.id = $2
		AND NOT EXISTS (SELECT 1 FROM hosts WHERE tenant_id = $1 AND site_id = $2)
		AND NOT EXISTS (SELECT 1 FROM agents WHERE tenant_id = $1 AND site_id = $2)
		AND NOT EXISTS (SELECT 1 FROM vms WHERE tenant_id = $1 AND site_id = $2 AND actual_state <> 'deleted')`
	qSiteExists = `SELECT EXISTS (SELECT 1 FROM sites WHERE tenant_id = $1 AND id = $2)`
)

// Enrollment tokens.
const (
	qInsertToken = `INSERT INTO enrollment_tokens (` + tokenCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	// One conditional UPDATE: a racing enrollment waits for the row lock,
	// then re-checks uses < max_uses against the committed count, so two
	// enrollments cannot both take the last use.
	// qEnroll is a whole enrollment in one statement, hence one round
	// trip and one commit: the token use, the agent with its certificate,
	// its host and (when $8 is not NULL) the audit event. With no usable
	// token the inserts see no row and the statement returns none. The
	// row lock of the UPDATE serialises racers on one token, and the
	// foreign keys are checked once every part is written.
	qEnroll = `WITH tok AS (
			UPDATE enrollment_tokens SET uses = uses + 1
			WHERE hash = $1 AND uses < max_uses AND expires_at > $2
			RETURNING ` + tokenCols + `
		), agent AS (
			INSERT INTO agents (` + agentCols + `)
			SELECT $3::uuid, tenant_id, site_id, $4::uuid, $15::text, '', $5::text, $6::timestamptz,
				false, NULL, NULL, $2::timestamptz FROM tok
		), host AS (
			INSERT INTO hosts (` + hostCols + `)
			SELECT $4::uuid, tenant_id, site_id, $3::uuid, $7::text, false, NULL, '{}', '{}', '{}',
				$2::timestamptz, $2::timestamptz FROM tok
		), audit AS (
			INSERT INTO audit_events (` + auditCols + `)
			SELECT $8::uuid, tenant_id, $9::text, $10::text, $11::text, $12::text, $13::text, $14::timestamptz
			FROM tok WHERE $8::uuid IS NOT NULL
		)
		SELECT ` + tokenCols + ` FROM tok`
	qTokenByHash = `SELECT ` + tokenCols + ` FROM enrollment_tokens
		WHERE hash = $1 AND uses < max_uses AND expires_at > $2`
	qTokensWithStaleSetupKeys = `SELECT ` + tokenCols + ` FROM enrollment_tokens
		WHERE netbird_setup_key_id <> ''
			AND ((uses = 0 AND expires_at < $1) OR (uses > 0 AND expires_at < $2))
		ORDER BY expires_at, id LIMIT $3`
	qClearTokenSetupKey = `UPDATE enrollment_tokens SET netbird_setup_key_id = '', netbird_setup_key_sealed = '\x'::bytea WHERE id = $1`
)

// Agents.
const (
	qInsertAgent    = `INSERT INTO agents (` + agentCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	qGetAgent       = `SELECT ` + agentCols + ` FROM agents WHERE id = $1`
	qGetTenantAgent = `SELECT ` + agentCols + ` FROM agents WHERE tenant_id = $1 AND id = $2`
	qListAgents     = `SELECT ` + agentCols + ` FROM agents WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3`
	// A second revocation keeps the time of the first. The host goes
	// offline in the same statement.
	qRevokeAgent = `WITH a AS (
			UPDATE agents SET revoked = true, status = 'revoked', revoked_at = COALESCE(revoked_at, $3)
			WHERE tenant_id = $1 AND id = $2
			RETURNING ` + agentCols + `
		), h AS (
			UPDATE hosts SET online = false, updated_at = $3 FROM a WHERE hosts.agent_id = a.id
		)
		SELECT ` + agentCols + ` FROM a`
	qRotateAgentCert = `UPDATE agents SET cert_serial = $2, cert_expires_at = $3 WHERE id = $1`
	// A revoked agent stays revoked, and its host offline, whatever its
	// session does. An empty version keeps the known one.
	qSetAgentOnline = `WITH a AS (
			UPDATE agents SET
				status = CASE WHEN revoked THEN 'revoked' WHEN $2 THEN 'online' ELSE 'offline' END,
				version = CASE WHEN $3 = '' THEN version ELSE $3 END,
				last_seen_at = $4
			WHERE id = $1
			RETURNING id, revoked
		), h AS (
			UPDATE hosts SET online = ($2 AND NOT a.revoked), last_seen_at = $4, updated_at = $4
			FROM a WHERE hosts.agent_id = a.id
		)
		SELECT count(*) FROM a`
	// Agents, hosts and VMs change in one statement, hence atomically.
	qMarkStaleAgents = `WITH stale AS (
			UPDATE agents SET status = 'offline'
			WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < $1)
			RETURNING ` + agentCols + `
		), h AS (
			UPDATE hosts SET online = false, updated_at = $2
			WHERE agent_id IN (SELECT id FROM stale)
		), v AS (
			UPDATE vms SET actual_state = 'unknown', updated_at = $2
			WHERE host_id IN (SELECT host_id FROM stale) AND actual_state NOT IN ('deleted', 'unknown')
		)
		SELECT ` + agentCols + ` FROM stale ORDER BY id`
)

// Hosts.
const (
	qInsertHost = `INSERT INTO hosts (` + hostCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	qGetHost    = `SELECT ` + hostCols + ` FROM hosts WHERE tenant_id = $1 AND id = $2`
	qListHosts  = `SELECT ` + hostCols + ` FROM hosts
		WHERE tenant_id = $1 AND ($2::uuid IS NULL OR site_id = $2) AND id > $3 ORDER BY id LIMIT $4`
	// A whole batch of heartbeats in one statement. Rows of one host are
	// folded first (latest time, latest non-NULL facts, NetBird and usage), since
	// UPDATE … FROM applies at most one source row per target. A heartbeat
	// marks its agent and host online unless the agent was revoked; one
	// naming another agent's host changes nothing; last_seen_at never
	// moves backwards; NULL facts, NetBird or usage keep the stored value.
	qHeartbeats = `WITH input AS (
			SELECT host_id, agent_id, seen, facts::jsonb AS facts, netbird::jsonb AS netbird,
				usage::jsonb AS usage, ord
			FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
				WITH ORDINALITY AS t(host_id, agent_id, seen, facts, netbird, usage, ord)
		), folded AS (
			SELECT host_id, agent_id, max(seen) AS seen,
				(array_agg(facts ORDER BY ord DESC) FILTER (WHERE facts IS NOT NULL))[1] AS facts,
				(array_agg(netbird ORDER BY ord DESC) FILTER (WHERE netbird IS NOT NULL))[1] AS netbird,
				(array_agg(usage ORDER BY ord DESC) FILTER (WHERE usage IS NOT NULL))[1] AS usage
			FROM input GROUP BY host_id, agent_id
		), live AS (
			SELECT f.* FROM folded f
			JOIN agents a ON a.id = f.agent_id AND a.host_id = f.host_id AND NOT a.revoked
		), ag AS (
			UPDATE agents a SET last_seen_at = GREATEST(a.last_seen_at, l.seen), status = 'online'
			FROM live l WHERE a.id = l.agent_id
		)
		UPDATE hosts h SET
			last_seen_at = GREATEST(h.last_seen_at, l.seen),
			online = true,
			facts = COALESCE(l.facts, h.facts),
			netbird = COALESCE(l.netbird, h.netbird),
			usage = COALESCE(l.usage, h.usage),
			updated_at = GREATEST(h.updated_at, l.seen)
		FROM live l WHERE h.id = l.host_id AND h.agent_id = l.agent_id`
)

// VMs.
const (
	qInsertVM = `INSERT INTO vms (` + vmCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	qGetVM    = `SELECT ` + vmCols + ` FROM vms WHERE tenant_id = $1 AND id = $2`
	qListVMs  = `SELECT ` + vmCols + ` FROM vms
		WHERE tenant_id = $1
		AND ($2::uuid IS NULL OR site_id = $2)
		AND ($3::uuid IS NULL OR host_id = $3)
		AND ($4 OR actual_state <> 'deleted')
		AND id > $5 ORDER BY id LIMIT $6`
	qSetVMDesired = `UPDATE vms SET desired_state = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2`
	// A deleted VM is a tombstone: a late report must not bring it back
	// (and take its name from a newer VM). Unchanged rows are not
	// rewritten, so steady-state heartbeats cost no writes, and RETURNING
	// yields exactly the VMs that changed, as they are after the change.
	qReportVMStates = `UPDATE vms v SET actual_state = r.state, error = r.error, updated_at = $5
		FROM unnest($2::uuid[], $3::text[], $4::text[]) AS r(id, state, error)
		WHERE v.id = r.id AND v.host_id = $1 AND v.actual_state <> 'deleted'
		AND (v.actual_state <> r.state OR v.error <> r.error)
		RETURNING v.id, v.tenant_id, v.site_id, v.host_id, v.name, v.desired_state, v.actual_state,
			v.vcpus, v.memory_mib, v.spec, v.error, v.created_at, v.updated_at`
	qCountVMsByHost = `SELECT h.id, count(v.id) FROM hosts h
		LEFT JOIN vms v ON v.host_id = h.id AND v.actual_state <> 'deleted'
		WHERE h.tenant_id = $1 AND h.site_id = $2
		GROUP BY h.id`
)

// Plans, actions and executions.
const (
	qInsertPlan    = `INSERT INTO plans (` + planCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qInsertActions = `INSERT INTO plan_actions (id, tenant_id, plan_id, seq, type, vm_id, params, status, execution_id, error, updated_at)
		SELECT id, $1, $2, seq, type, vm_id, params::jsonb, status, execution_id, error, $3
		FROM unnest($4::uuid[], $5::int[], $6::text[], $7::uuid[], $8::text[], $9::text[], $10::uuid[], $11::text[])
			AS t(id, seq, type, vm_id, params, status, execution_id, error)`
	qInsertExecutions = `INSERT INTO executions (id, tenant_id, plan_id, action_id, status, error, created_at)
		SELECT execution_id, $1, $2, id, status, error, $3
		FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::text[]) AS t(id, execution_id, status, error)`
	qGetPlan   = `SELECT ` + planCols + ` FROM plans WHERE tenant_id = $1 AND id = $2`
	qPlanByID  = `SELECT ` + planCols + ` FROM plans WHERE id = $1`
	qListPlans = `SELECT ` + planCols + ` FROM plans
		WHERE tenant_id = $1
		AND ($2::uuid IS NULL OR site_id = $2)
		AND ($3 = '' OR status = $3)
		AND id > $4 ORDER BY id LIMIT $5`
	qPendingPlansOf = `SELECT ` + planCols + ` FROM plans
		WHERE agent_id = ANY($1::uuid[]) AND status NOT IN ('succeeded', 'failed', 'cancelled')
		ORDER BY agent_id, id`
	// The actions of a whole page of plans in one query.
	qActionsOfPlans = `SELECT ` + actionCols + ` FROM plan_actions
		WHERE plan_id = ANY($1::uuid[]) ORDER BY plan_id, seq`
	// Moves a pending plan of agent $2 and its children in one statement;
	// the children move only when the plan itself just left pending. The
	// statement's own snapshot cannot see what it changed, so the plan is
	// read back by the next statement of the transaction.
	qDispatchPlan = `WITH p AS (
			UPDATE plans SET status = 'dispatched', updated_at = $3
			WHERE id = $1 AND agent_id = $2 AND status = 'pending' RETURNING id
		), a AS (
			UPDATE plan_actions SET status = 'dispatched', updated_at = $3
			WHERE plan_id IN (SELECT id FROM p) AND status = 'pending'
		), e AS (
			UPDATE executions SET status = 'dispatched'
			WHERE plan_id IN (SELECT id FROM p) AND status = 'pending'
		)
		SELECT count(*) FROM p`
	qAgentPlan = `SELECT ` + planCols + ` FROM plans WHERE id = $1 AND agent_id = $2`
	// The action joined with its plan's owner, so a result from the wrong
	// agent finds nothing. Locking the plan row serialises the results of
	// one plan, so its status is computed from a stable set of actions.
	qActionForAgent = `SELECT a.plan_id, a.status, a.vm_id, a.tenant_id FROM plan_actions a
		JOIN plans p ON p.id = a.plan_id
		WHERE a.id = $1 AND p.agent_id = $2
		FOR UPDATE OF a, p`
	qUpdateAction    = `UPDATE plan_actions SET status = $2, error = $3, updated_at = $4 WHERE id = $1`
	qUpdateExecution = `UPDATE executions SET status = $2, error = $3,
		started_at = COALESCE(started_at, $4),
		finished_at = CASE WHEN $5 THEN $4 ELSE finished_at END
		WHERE action_id = $1`
	qVMStateFromAction = `UPDATE vms SET actual_state = $3, error = $4, updated_at = $5
		WHERE tenant_id = $1 AND id = $2 AND actual_state <> 'deleted'`
	// A plan fails with its first failed action, succeeds when all
	// actions have, and runs once any action has started.
	qRollUpPlan = `UPDATE plans p SET status = s.status, updated_at = $2
		FROM (
			SELECT CASE
				WHEN count(*) FILTER (WHERE status = 'failed') > 0 THEN 'failed'
				WHEN count(*) FILTER (WHERE status = 'succeeded') = count(*) THEN 'succeeded'
				WHEN count(*) FILTER (WHERE status IN ('running', 'succeeded', 'cancelled')) > 0 THEN 'running'
				END AS status
			FROM plan_actions WHERE plan_id = $1
		) s
		WHERE p.id = $1 AND s.status IS NOT NULL AND p.status <> s.status`
	qGetExecution    = `SELECT ` + execCols + ` FROM executions WHERE tenant_id = $1 AND id = $2`
	qExecutionAgent  = `SELECT p.agent_id FROM executions e JOIN plans p ON p.id = e.plan_id WHERE e.id = $1`
	qExecutionExists = `SELECT EXISTS (SELECT 1 FROM executions WHERE tenant_id = $1 AND id = $2)`
)

// Execution logs.
const (
	// Retried batches overlap earlier ones; the primary key turns the
	// overlap into no-ops, line by line, within one statement.
	qAppendLogLines = `INSERT INTO execution_logs (` + logCols + `)
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[])
		ON CONFLICT (execution_id, seq) DO NOTHING`
	qListLogLines = `SELECT ` + logCols + ` FROM execution_logs
		WHERE execution_id = $1 AND seq > $2
		AND EXISTS (SELECT 1 FROM executions WHERE tenant_id = $4 AND id = $1)
		ORDER BY seq LIMIT $3`
)

// Audit events and idempotency records.
const (
	qInsertAudit = `INSERT INTO audit_events (` + auditCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	// IS NOT DISTINCT FROM matches NULL too: uuid.Nil lists admin events.
	qListAudit = `SELECT ` + auditCols + ` FROM audit_events
		WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id > $2 ORDER BY id LIMIT $3`
	qGetIdempotency = `SELECT ` + idemCols + ` FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3`
	// A reservation inserts the key, or takes over a reservation that
	// lapsed before $5 (its request's replica died); an answer or a live
	// reservation stays, and then no row is returned. A concurrent insert
	// of the same key waits for the first to commit and then re-checks
	// the WHERE against the committed row, so exactly one wins.
	qReserveIdempotency = `INSERT INTO idempotency_keys (` + idemCols + `)
		VALUES ($1, $2, $3, $4, 0, '\x'::bytea, $5, $6, $7)
		ON CONFLICT (tenant_id, route, key) DO UPDATE SET
			fingerprint = EXCLUDED.fingerprint, status = 0, response = '\x'::bytea, created_at = EXCLUDED.created_at,
			holder = EXCLUDED.holder, reserved_until = EXCLUDED.reserved_until
		WHERE idempotency_keys.holder IS NOT NULL AND idempotency_keys.reserved_until < EXCLUDED.created_at
		RETURNING holder`
	qCompleteIdempotency = `UPDATE idempotency_keys SET status = $5, response = $6, holder = NULL, reserved_until = NULL
		WHERE tenant_id = $1 AND route = $2 AND key = $3 AND holder = $4`
	qReleaseIdempotency = `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND route = $2 AND key = $3 AND holder = $4`
)
