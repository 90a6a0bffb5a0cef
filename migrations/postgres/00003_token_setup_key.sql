-- The NetBird setup key minted for an enrollment token, sealed with
-- AES-GCM under a key derived from the token secret, which the server
-- never stores: only a holder of the token can open it at enrollment.
-- Empty when NetBird is off for the token's site.

-- +goose Up
ALTER TABLE enrollment_tokens ADD COLUMN netbird_setup_key_sealed bytea NOT NULL DEFAULT '\x';

-- +goose Down
ALTER TABLE enrollment_tokens DROP COLUMN netbird_setup_key_sealed;
