-- The CA that replicas sharing a database issue and trust, its private key
-- sealed with NKUDO_PKI_SEAL_KEY. A SQLite server keeps its CA in the data
-- dir and never fills this table; it exists so both engines have the same
-- schema versions and pass the same conformance suite. One row at most.

-- +goose Up
CREATE TABLE pki_ca (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    cert_pem   BLOB    NOT NULL,
    key_sealed BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE pki_ca;
