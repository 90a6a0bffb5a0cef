// Package backup writes and restores nkudo-server backups: one gzipped
// tar archive holding a manifest (nkudo-backup.json), the PKI (the CA
// certificate and key, and the server certificate when it lives in the
// data dir) and, for SQLite, a consistent snapshot of the live database
// taken with VACUUM INTO. A PostgreSQL deployment backs its data up with
// pg_dump and this archive holds only the PKI (PKIOnly).
//
// Restore puts an archive into an empty data dir and refuses anything
// else, so a restore never mixes two states.
package backup
