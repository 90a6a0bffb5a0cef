-- Host resource usage (CPU, memory, disk, load…) from the latest heartbeat,
-- as a JSON object like facts and netbird; '{}' until the first heartbeat.

-- +goose Up
ALTER TABLE hosts ADD COLUMN usage jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE hosts DROP COLUMN usage;
