//! The schema, as a list of scripts applied in order.
//!
//! `PRAGMA user_version` records how many have run. Each script runs in its
//! own immediate transaction together with the version bump, so a crash
//! leaves the database at one version or the next, never between. Scripts
//! are never edited once released: a change is a new script.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Version 1: admins, sessions, login throttle, setup, organizations, audit.
const V1: &str = r"
CREATE TABLE admins (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    admin_id   TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_hash  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_admin ON sessions (admin_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Keyed by the name that was tried, whether or not such an admin exists,
-- so that locking says nothing about which names exist.
CREATE TABLE login_throttle (
    username     TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until TEXT
) STRICT;

CREATE TABLE setup (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    token_hash TEXT,
    used_at    TEXT
) STRICT;

-- name_key is the name in lower case (Unicode-aware, computed by the core):
-- it carries the case-insensitive uniqueness and the search, the same way on
-- SQLite and PostgreSQL.
CREATE TABLE orgs (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    client_addr TEXT,
    request_id  TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    detail      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
) STRICT;
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_action ON audit (action, id);

-- Append-only against mistakes in our own code. Someone with the file can
-- drop these; the hash chain is what catches them.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Version 2: users, devices, VPN servers, their address pools, key links,
/// settings.
///
/// Address allocation never scans a pool: each server keeps the next
/// never-used host number per family (`next_host4`, `next_host6`), and
/// released host numbers go to `free_hosts`, which is drawn from first. A
/// trigger fills `free_hosts` whenever a peer row goes, whatever removed it
/// (a device, user or org deleted, an org detached), so no code path can
/// leak an address. `UNIQUE (server_id, address)` is the backstop against a
/// bug handing one out twice.
const V2: &str = r"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id         TEXT PRIMARY KEY NOT NULL,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    email      TEXT,
    email_key  TEXT,
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX users_org ON users (org_id, id);

-- private_key_sealed is set only when the server generated the key pair;
-- it is sealed under the host key, bound to 'device:<id>:private_key'.
CREATE TABLE devices (
    id                 TEXT PRIMARY KEY NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    public_key         TEXT NOT NULL UNIQUE,
    private_key_sealed TEXT,
    created_at         TEXT NOT NULL
) STRICT;
CREATE INDEX devices_user ON devices (user_id, id);

CREATE TABLE servers (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL UNIQUE,
    network            TEXT NOT NULL,
    network6           TEXT,
    port               INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    dns                TEXT NOT NULL,
    routes             TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('stopped', 'running')),
    public_key         TEXT NOT NULL UNIQUE,
    private_key_sealed TEXT NOT NULL,
    next_host4         INTEGER NOT NULL,
    next_host6         INTEGER NOT NULL,
    created_at         TEXT NOT NULL
) STRICT;

CREATE TABLE server_orgs (
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    org_id    TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    PRIMARY KEY (server_id, org_id)
) STRICT;
CREATE INDEX server_orgs_org ON server_orgs (org_id);

-- One row per device on each server its org is attached to: its addresses
-- (host numbers counted from the network address) and the pair's preshared
-- key, sealed and bound to 'peer:<server_id>:<device_id>:psk'.
CREATE TABLE peers (
    server_id  TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    host4      INTEGER NOT NULL,
    address    TEXT NOT NULL,
    host6      INTEGER,
    address6   TEXT,
    psk_sealed TEXT NOT NULL,
    PRIMARY KEY (server_id, device_id),
    UNIQUE (server_id, address),
    UNIQUE (server_id, address6)
) STRICT;
CREATE INDEX peers_device ON peers (device_id);

-- No foreign key: rows are written while a server's deletion cascades. The
-- store deletes a server's rows itself, in the same transaction.
CREATE TABLE free_hosts (
    server_id TEXT NOT NULL,
    family    INTEGER NOT NULL CHECK (family IN (4, 6)),
    host      INTEGER NOT NULL,
    PRIMARY KEY (server_id, family, host)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER peers_release AFTER DELETE ON peers
BEGIN
    INSERT OR IGNORE INTO free_hosts (server_id, family, host) VALUES (old.server_id, 4, old.host4);
    INSERT OR IGNORE INTO free_hosts (server_id, family, host)
        SELECT old.server_id, 6, old.host6 WHERE old.host6 IS NOT NULL;
END;

-- Only the SHA-256 of a link's token is stored.
CREATE TABLE key_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    max_uses   INTEGER NOT NULL CHECK (max_uses BETWEEN 1 AND 100),
    uses       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX key_links_user ON key_links (user_id);
";

/// Version 3 (the control plane, admins): TOTP state on admins, API tokens.
///
/// TOTP seeds are stored only sealed under the host key (`sealed`); the
/// last accepted time step is what refuses a replayed code. API tokens are
/// stored as their SHA-256 only, and go with the admin who made them.
const V3: &str = r"
ALTER TABLE admins ADD COLUMN totp_sealed TEXT;
ALTER TABLE admins ADD COLUMN totp_pending_sealed TEXT;
ALTER TABLE admins ADD COLUMN totp_last_step INTEGER;

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    admin_id   TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX api_tokens_admin ON api_tokens (admin_id);
";

/// Version 4 (ACME): settings, the sealed account, the certificate, the
/// challenge answers every host may be asked for, and the last attempt.
const V4: &str = r"
-- One row: the ACME settings, the renewal flag and the last attempt.
CREATE TABLE acme_settings (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    domains         TEXT NOT NULL DEFAULT '[]',
    email           TEXT,
    directory       TEXT NOT NULL,
    challenge       TEXT NOT NULL CHECK (challenge IN ('http-01', 'tls-alpn-01', 'dns-01')),
    renew_requested INTEGER NOT NULL DEFAULT 0 CHECK (renew_requested IN (0, 1)),
    last_attempt    TEXT,
    last_error      TEXT,
    -- Which edge may order now, until when: two hosts of a cluster that
    -- find renewal due at the same moment must not both order.
    lease_holder    TEXT,
    lease_until     TEXT
) STRICT;
INSERT INTO acme_settings (id, directory, challenge)
VALUES (1, 'https://acme-v02.api.letsencrypt.org/directory', 'http-01');

-- The account per directory; credentials (with the account key) sealed.
CREATE TABLE acme_accounts (
    directory          TEXT PRIMARY KEY NOT NULL,
    credentials_sealed TEXT NOT NULL,
    created_at         TEXT NOT NULL
) STRICT;

-- One row: the current certificate; its key sealed.
CREATE TABLE acme_certificate (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    serial     TEXT NOT NULL,
    names      TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    chain_pem  TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    stored_at  TEXT NOT NULL
) STRICT;

-- Challenge answers, so any host can answer for an order another started.
CREATE TABLE acme_challenges (
    kind       TEXT NOT NULL CHECK (kind IN ('http-01', 'tls-alpn-01', 'dns-01')),
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    key_sealed TEXT,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT;
";

/// Version 5: an organization's user index carries the two search keys, so
/// a search tests them on the index alone and reads only the rows that
/// match (it used to read every row of the organization from the table;
/// docs/performance.md).
const V5: &str = r"
CREATE INDEX users_org_search ON users (org_id, id, name_key, email_key);
DROP INDEX users_org;
";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub(super) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Applies the scripts the database has not seen.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = latest();
    for (target, script) in (1..).zip(MIGRATIONS) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read inside the transaction: another process may have migrated
        // while we waited for the lock.
        let current = version(&tx)?;
        if current > known {
            return Err(StoreError::TooNew { found: current, known });
        }
        if current >= target {
            continue;
        }
        tx.execute_batch(script).map_err(|source| StoreError::Migration {
            version: target,
            source,
        })?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        tracing::info!(version = target, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), latest());
        // Idempotent.
        migrate(&mut conn).unwrap();
        conn.pragma_update(None, "user_version", latest() + 1).unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }
}
