-- The CA that replicas sharing this database issue and trust: the first
-- replica to start stores it (INSERT … ON CONFLICT DO NOTHING, so of two
-- racing replicas one wins and the other reads the winner's), the others
-- load it. The private key is sealed with AES-256-GCM under
-- NKUDO_PKI_SEAL_KEY, which never reaches the database. One row at most.

-- +goose Up
CREATE TABLE pki_ca (
    id         smallint    NOT NULL PRIMARY KEY CHECK (id = 1),
    cert_pem   bytea       NOT NULL,
    key_sealed bytea       NOT NULL,
    created_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE pki_ca;
