-- The whole nkudo domain for the PostgreSQL store.
--
-- Conventions: ids are uuid (UUIDv7, so ORDER BY id is creation order and
-- keyset pagination needs no timestamp); times are timestamptz; JSON is
-- jsonb; lists are text[]. Tenant-scoped children carry tenant_id and
-- reference their parents through composite (tenant_id, id) keys, so the
-- schema itself refuses an object that points into another tenant. The
-- UNIQUE (tenant_id, id) constraints double as the indexes of tenant-scoped
-- keyset pagination (WHERE tenant_id = $1 AND id > $2 ORDER BY id).

-- +goose Up
CREATE TABLE tenants (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           uuid        NOT NULL PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    prefix       text        NOT NULL,
    hash         bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant_id ON api_keys (tenant_id, id);

CREATE TABLE sites (
    id              uuid        NOT NULL PRIMARY KEY,
    tenant_id       uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    netbird_enabled boolean     NOT NULL DEFAULT false,
    netbird_groups  text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE enrollment_tokens (
    id                   uuid        NOT NULL PRIMARY KEY,
    tenant_id            uuid        NOT NULL,
    site_id              uuid        NOT NULL,
    hash                 bytea       NOT NULL UNIQUE,
    expires_at           timestamptz NOT NULL,
    max_uses             integer     NOT NULL CHECK (max_uses > 0),
    uses                 integer     NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    created_at           timestamptz NOT NULL,
    netbird_setup_key_id text        NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX enrollment_tokens_site ON enrollment_tokens (site_id);
-- Only tokens that still hold a NetBird setup key are candidates for cleanup.
CREATE INDEX enrollment_tokens_expired_setup_key ON enrollment_tokens (expires_at, id)
    WHERE netbird_setup_key_id <> '' AND uses = 0;

-- agents and hosts reference each other one to one; the agent -> host key is
-- added after hosts exists and deferred, so enrollment inserts both in one
-- transaction in either order.
CREATE TABLE agents (
    id              uuid        NOT NULL PRIMARY KEY,
    tenant_id       uuid        NOT NULL,
    site_id         uuid        NOT NULL,
    host_id         uuid        NOT NULL UNIQUE,
    status          text        NOT NULL CHECK (status IN ('online', 'offline', 'revoked')),
    version         text        NOT NULL DEFAULT '',
    cert_serial     text        NOT NULL DEFAULT '',
    cert_expires_at timestamptz NOT NULL,
    revoked         boolean     NOT NULL DEFAULT false,
    revoked_at      timestamptz,
    last_seen_at    timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
CREATE INDEX agents_site ON agents (site_id);
-- Offline detection scans only online agents by last heartbeat.
CREATE INDEX agents_online_last_seen ON agents (last_seen_at) WHERE status = 'online';

CREATE TABLE hosts (
    id           uuid        NOT NULL PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    site_id      uuid        NOT NULL,
    agent_id     uuid        NOT NULL UNIQUE REFERENCES agents (id) DEFERRABLE INITIALLY DEFERRED,
    hostname     text        NOT NULL,
    online       boolean     NOT NULL DEFAULT false,
    last_seen_at timestamptz,
    facts        jsonb       NOT NULL DEFAULT '{}',
    netbird      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id)
);
CREATE INDEX hosts_tenant_site_id ON hosts (tenant_id, site_id, id);

ALTER TABLE agents ADD CONSTRAINT agents_host_id_fkey
    FOREIGN KEY (host_id) REFERENCES hosts (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE vms (
    id            uuid        NOT NULL PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    site_id       uuid        NOT NULL,
    host_id       uuid,
    name          text        NOT NULL,
    desired_state text        NOT NULL,
    actual_state  text        NOT NULL,
    vcpus         integer     NOT NULL,
    memory_mib    integer     NOT NULL,
    spec          jsonb       NOT NULL DEFAULT '{}',
    error         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, host_id) REFERENCES hosts (tenant_id, id)
);
-- A name is taken while a VM of that name is not deleted.
CREATE UNIQUE INDEX vms_tenant_name_live ON vms (tenant_id, name) WHERE actual_state <> 'deleted';
CREATE INDEX vms_tenant_site_id ON vms (tenant_id, site_id, id);
CREATE INDEX vms_host ON vms (host_id, id);

CREATE TABLE plans (
    id         uuid        NOT NULL PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    site_id    uuid        NOT NULL,
    host_id    uuid        NOT NULL,
    agent_id   uuid        NOT NULL,
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, host_id) REFERENCES hosts (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE INDEX plans_tenant_site_id ON plans (tenant_id, site_id, id);
CREATE INDEX plans_tenant_status_id ON plans (tenant_id, status, id);
-- What an agent must still be sent or still owes results for.
CREATE INDEX plans_agent_open ON plans (agent_id, id)
    WHERE status NOT IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE plan_actions (
    id           uuid        NOT NULL PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    plan_id      uuid        NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    seq          integer     NOT NULL,
    type         text        NOT NULL,
    vm_id        uuid,
    params       jsonb       NOT NULL DEFAULT '{}',
    status       text        NOT NULL,
    execution_id uuid        NOT NULL UNIQUE,
    error        text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL,
    UNIQUE (plan_id, seq),
    FOREIGN KEY (tenant_id, vm_id) REFERENCES vms (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX plan_actions_vm ON plan_actions (vm_id);

CREATE TABLE executions (
    id          uuid        NOT NULL PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    plan_id     uuid        NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    action_id   uuid        NOT NULL UNIQUE REFERENCES plan_actions (id) ON DELETE CASCADE,
    status      text        NOT NULL,
    error       text        NOT NULL DEFAULT '',
    started_at  timestamptz,
    finished_at timestamptz,
    created_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX executions_plan ON executions (plan_id);

CREATE TABLE execution_logs (
    execution_id uuid        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          bigint      NOT NULL,
    at           timestamptz NOT NULL,
    stream       text        NOT NULL,
    message      text        NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- Audit events outlive what they describe and record calls that failed
-- before a tenant was known, so they reference nothing. tenant_id is NULL
-- for admin calls outside a tenant.
CREATE TABLE audit_events (
    id         uuid        NOT NULL PRIMARY KEY,
    tenant_id  uuid,
    actor      text        NOT NULL,
    action     text        NOT NULL,
    target     text        NOT NULL DEFAULT '',
    result     text        NOT NULL,
    request_id text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL
);
CREATE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);

-- tenant_id is the nil UUID for the admin scope, so the primary key needs
-- no NULL handling.
CREATE TABLE idempotency_keys (
    tenant_id   uuid        NOT NULL,
    route       text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    status      integer     NOT NULL,
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, route, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
ALTER TABLE agents DROP CONSTRAINT agents_host_id_fkey;
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
