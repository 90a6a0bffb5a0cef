-- The whole nkudo domain for the embedded SQLite store.
--
-- Conventions: ids are TEXT holding the lowercase canonical UUID form (which
-- sorts like the bytes, so ORDER BY id is creation order for UUIDv7); times
-- are INTEGER unix microseconds UTC; JSON is TEXT; booleans are INTEGER 0/1.
-- Tenant-scoped children carry tenant_id and reference their parents through
-- composite (tenant_id, id) keys, so the schema itself refuses an object that
-- points into another tenant.

-- +goose Up
CREATE TABLE tenants (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    prefix       TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_keys_tenant_id ON api_keys (tenant_id, id);

CREATE TABLE sites (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    netbird_enabled INTEGER NOT NULL DEFAULT 0,
    netbird_groups  TEXT    NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE enrollment_tokens (
    id                   TEXT    NOT NULL PRIMARY KEY,
    tenant_id            TEXT    NOT NULL,
    site_id              TEXT    NOT NULL,
    hash                 BLOB    NOT NULL UNIQUE,
    expires_at           INTEGER NOT NULL,
    max_uses             INTEGER NOT NULL CHECK (max_uses > 0),
    uses                 INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_at           INTEGER NOT NULL,
    netbird_setup_key_id TEXT    NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX enrollment_tokens_site ON enrollment_tokens (site_id);
-- Only tokens that still hold a NetBird setup key are candidates for cleanup.
CREATE INDEX enrollment_tokens_expired_setup_key ON enrollment_tokens (expires_at)
    WHERE netbird_setup_key_id <> '' AND uses = 0;

-- agents and hosts reference each other one to one; the agent -> host key is
-- deferred so enrollment can insert both in one transaction.
CREATE TABLE agents (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    site_id         TEXT    NOT NULL,
    host_id         TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL CHECK (status IN ('online', 'offline', 'revoked')),
    version         TEXT    NOT NULL DEFAULT '',
    cert_serial     TEXT    NOT NULL DEFAULT '',
    cert_expires_at INTEGER NOT NULL,
    revoked         INTEGER NOT NULL DEFAULT 0,
    revoked_at      INTEGER,
    last_seen_at    INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    FOREIGN KEY (host_id) REFERENCES hosts (id) DEFERRABLE INITIALLY DEFERRED
) STRICT;
CREATE INDEX agents_tenant_id ON agents (tenant_id, id);
CREATE INDEX agents_site ON agents (site_id);
-- Offline detection scans only online agents by last heartbeat.
CREATE INDEX agents_online_last_seen ON agents (last_seen_at) WHERE status = 'online';

CREATE TABLE hosts (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    site_id      TEXT    NOT NULL,
    agent_id     TEXT    NOT NULL UNIQUE REFERENCES agents (id),
    hostname     TEXT    NOT NULL,
    online       INTEGER NOT NULL DEFAULT 0,
    last_seen_at INTEGER,
    facts        TEXT    NOT NULL DEFAULT '{}',
    netbird      TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
) STRICT;
CREATE INDEX hosts_tenant_id ON hosts (tenant_id, id);
CREATE INDEX hosts_tenant_site_id ON hosts (tenant_id, site_id, id);

CREATE TABLE vms (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    site_id       TEXT    NOT NULL,
    host_id       TEXT,
    name          TEXT    NOT NULL,
    desired_state TEXT    NOT NULL,
    actual_state  TEXT    NOT NULL,
    vcpus         INTEGER NOT NULL,
    memory_mib    INTEGER NOT NULL,
    spec          TEXT    NOT NULL DEFAULT '{}',
    error         TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, host_id) REFERENCES hosts (tenant_id, id)
) STRICT;
-- A name is taken while a VM of that name is not deleted.
CREATE UNIQUE INDEX vms_tenant_name_live ON vms (tenant_id, name) WHERE actual_state <> 'deleted';
CREATE INDEX vms_tenant_id ON vms (tenant_id, id);
CREATE INDEX vms_tenant_site_id ON vms (tenant_id, site_id, id);
CREATE INDEX vms_host ON vms (host_id, id);

CREATE TABLE plans (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    site_id    TEXT    NOT NULL,
    host_id    TEXT    NOT NULL,
    agent_id   TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, host_id) REFERENCES hosts (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
) STRICT;
CREATE INDEX plans_tenant_id ON plans (tenant_id, id);
CREATE INDEX plans_tenant_site_id ON plans (tenant_id, site_id, id);
CREATE INDEX plans_tenant_status_id ON plans (tenant_id, status, id);
-- What an agent must still be sent or still owes results for.
CREATE INDEX plans_agent_open ON plans (agent_id, id)
    WHERE status NOT IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE plan_actions (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    plan_id      TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    vm_id        TEXT,
    params       TEXT    NOT NULL DEFAULT '{}',
    status       TEXT    NOT NULL,
    execution_id TEXT    NOT NULL UNIQUE,
    error        TEXT    NOT NULL DEFAULT '',
    updated_at   INTEGER NOT NULL,
    UNIQUE (plan_id, seq),
    FOREIGN KEY (tenant_id, vm_id) REFERENCES vms (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX plan_actions_vm ON plan_actions (vm_id);

CREATE TABLE executions (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    plan_id     TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    action_id   TEXT    NOT NULL UNIQUE REFERENCES plan_actions (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    error       TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX executions_plan ON executions (plan_id);

CREATE TABLE execution_logs (
    execution_id TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    stream       TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq)
) STRICT, WITHOUT ROWID;

-- Audit events outlive what they describe and record calls that failed
-- before a tenant was known, so they reference nothing. tenant_id is NULL
-- for admin calls outside a tenant.
CREATE TABLE audit_events (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',
    result     TEXT    NOT NULL,
    request_id TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);

-- tenant_id is the nil UUID for the admin scope, so the primary key needs
-- no NULL handling.
CREATE TABLE idempotency_keys (
    tenant_id   TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    status      INTEGER NOT NULL,
    response    BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, route, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
-- agents and hosts reference each other; deferring every foreign key to
-- the commit of goose's transaction lets the tables go in any order.
PRAGMA defer_foreign_keys = ON;
DROP TABLE idempotency_keys;
DROP TABLE audit_events;
DROP TABLE execution_logs;
DROP TABLE executions;
DROP TABLE plan_actions;
DROP TABLE plans;
DROP TABLE vms;
DROP TABLE hosts;
DROP TABLE agents;
DROP TABLE enrollment_tokens;
DROP TABLE sites;
DROP TABLE api_keys;
DROP TABLE tenants;
