-- Indexes for the retention job, which deletes rows older than a cutoff in
-- small batches, oldest first, and reports the oldest row's age: each
-- batch reads the front of one of these indexes instead of scanning the
-- table.

-- +goose Up
CREATE INDEX execution_logs_at ON execution_logs (at);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX plans_finished_updated ON plans (updated_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX agents_revoked_at ON agents (revoked_at) WHERE revoked = 1;

-- +goose Down
DROP INDEX agents_revoked_at;
DROP INDEX plans_finished_updated;
DROP INDEX audit_events_at;
DROP INDEX execution_logs_at;
