//! The storage interface: every SQL statement the core runs lives below here.
//!
//! Callers see plain async methods that take and return `schemas` types and
//! the small records defined here; the SQLite details (connections, pragmas,
//! transactions, SQL) stay in the submodules, so a PostgreSQL implementation
//! can provide the same methods later.
//!
//! Each method that changes state takes the [`AuditRecord`] describing the
//! change and appends it in the same transaction, so a change without its
//! audit entry (or the reverse) cannot be committed.
//!
//! # Layout
//! - `conn`: the one writer connection on its own thread, committing
//!   writes in groups, the reader pool, and the statement cache every
//!   statement goes through.
//! - `migrations`: the versioned schema.
//! - `accounts`: admins, the setup row, sessions and the login throttle.
//! - `admins`: managing admins (list, change, delete, the last-admin rule)
//!   and their TOTP state.
//! - `tokens`: API tokens.
//! - `orgs`: organizations.
//! - `users`: users, devices and key links; `servers`: VPN servers and
//!   attached organizations; `pool`: their static addresses;
//!   `settings`: key/value settings; `resources`: the records and `Store`
//!   methods of these.
//! - `acme`: ACME settings, account, certificate and challenge answers.
//! - `audit`: appending to, listing and verifying the hash chain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use schemas::api::{Admin, AuditEntry, AuditVerify, Org};
use schemas::values::{AdminId, Name, OrgId};

use crate::audit::AuditRecord;

mod accounts;
mod acme;
mod admins;
mod audit;
mod conn;
mod migrations;
mod orgs;
mod pool;
mod resources;
mod servers;
mod settings;
mod tokens;
mod tunnel;
mod users;

pub use admins::{AdminChange, TotpState};
pub use tokens::{NewToken, TokenAuth};

pub use acme::{AcmeSettings, AcmeSettingsChange, StoredCert, StoredChallenge};
use conn::Cached;
use conn::Db;
pub use resources::{NewDevice, NewLink, NewServer, PeerProfile, ServerQuery, UserQuery};
pub use tunnel::{Touched, TunnelPeer, TunnelServer};

/// Why a store operation failed. The first group are faults; the second are
/// refusals that the API reports to the client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error")]
    Database(#[from] rusqlite::Error),
    /// The database directory could not be prepared.
    #[error("cannot prepare {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer build.
    #[error("the database schema is version {found}, newer than this build's {known}")]
    TooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A migration script failed.
    #[error("migration to schema version {version} failed")]
    Migration {
        /// The version it would have reached.
        version: i64,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value does not parse as its type.
    #[error("stored {column} is corrupt: {value:?}")]
    Corrupt {
        /// Which column.
        column: &'static str,
        /// The value found (never a secret: hashes and names only).
        value: String,
    },
    /// The blocking task running the query panicked or was cancelled.
    #[error("database task failed")]
    Join(#[source] tokio::task::JoinError),
    /// The write panicked (and was rolled back), or the writer thread has
    /// stopped.
    #[error("database write failed")]
    Writer,

    /// A unique value is taken.
    #[error("{field} is already taken")]
    Duplicate {
        /// The field whose value is taken.
        field: &'static str,
    },
    /// No such row.
    #[error("not found")]
    NotFound,
    /// Setup was completed before (or an admin exists).
    #[error("setup has already been done")]
    SetupDone,
    /// The setup token does not match.
    #[error("wrong setup token")]
    WrongSetupToken,
    /// The change conflicts with the state of things (a pool exhausted, a
    /// network in use, a device not on a server).
    #[error("{field}: {message}")]
    Conflict {
        /// The field the conflict is about.
        field: &'static str,
        /// What the client is told.
        message: &'static str,
    },
    /// Something that worked once no longer does (an expired key link).
    #[error("{0}")]
    Gone(&'static str),
    /// A sealed secret does not open under the host key.
    #[error("sealed secret")]
    Seal(#[from] crate::sealed::SealError),
    /// The change would leave no active admin; `field` is what would do it.
    #[error("{field}: the last active admin must stay an active admin")]
    LastAdmin {
        /// `role`, `disabled` or `id` (for a deletion).
        field: &'static str,
    },
    /// A TOTP code for a time step at or before the last accepted one.
    #[error("TOTP code already used")]
    TotpReplay,
    /// Writing an exported entry failed.
    #[error("cannot write the export")]
    Export(#[source] std::io::Error),
    /// Confirming TOTP without a pending enrolment (or a different one).
    #[error("no TOTP enrolment is pending")]
    NoPendingTotp,
}

/// An admin as login needs it.
#[derive(Debug, Clone)]
pub struct AdminCredentials {
    /// The admin.
    pub admin: Admin,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// Disabled admins cannot sign in.
    pub disabled: bool,
    /// The active TOTP seed, sealed, when enrolled.
    pub totp_sealed: Option<String>,
}

/// An admin to create.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    /// The admin.
    pub admin: Admin,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// When.
    pub created_at: Timestamp,
}

/// Where first-admin setup stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupState {
    /// SHA-256 (hex) of the pending setup token, if one was issued.
    pub token_hash: Option<String>,
    /// Whether setup was completed.
    pub used: bool,
    /// Whether any admin exists.
    pub admin_exists: bool,
}

impl SetupState {
    /// Setup can no longer be done.
    pub fn is_done(&self) -> bool {
        self.used || self.admin_exists
    }
}

/// A session to create; only digests of its tokens are stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 (hex) of the cookie token.
    pub token_hash: String,
    /// SHA-256 (hex) of the CSRF token.
    pub csrf_hash: String,
    /// Whose.
    pub admin_id: AdminId,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A stored session and its admin.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The admin.
    pub admin: Admin,
    /// Whether the admin is disabled.
    pub admin_disabled: bool,
    /// SHA-256 (hex) of the CSRF token.
    pub csrf_hash: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// How long an account stays locked after `failures` consecutive failures,
/// or `None` for not at all. Passed in so the policy lives with the login
/// code, not in the store.
pub type LockPolicy = fn(u32) -> Option<SignedDuration>;

/// A page of `T` and whether more follow.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    /// At most the requested number of items.
    pub items: Vec<T>,
    /// Whether there are more after the last one.
    pub more: bool,
}

/// Which organizations to list.
#[derive(Debug, Clone, Default)]
pub struct OrgQuery {
    /// Only ids after this one (the cursor).
    pub after: Option<OrgId>,
    /// Page size.
    pub limit: u32,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only ids below this one (the cursor).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
}

/// The database. Cheap to clone; all clones share the connections.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Db>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let db = tokio::task::spawn_blocking(move || Db::open(&path))
            .await
            .map_err(StoreError::Join)??;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs a trivial query: the core is ready when this works.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .read(|conn| Ok(conn.row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?))
            .await
    }

    // --- setup ---------------------------------------------------------

    /// Where first-admin setup stands.
    pub async fn setup_state(&self) -> Result<SetupState, StoreError> {
        self.db.read(accounts::setup_state).await
    }

    /// Records the digest of a newly issued setup token (replacing an
    /// earlier one) unless setup was completed.
    pub async fn issue_setup_token(&self, token_hash: String) -> Result<(), StoreError> {
        self.db
            .write(move |tx| accounts::issue_setup_token(tx, &token_hash))
            .await
    }

    /// Creates the first admin if `token_hash` matches the issued token and
    /// setup is not done; marks setup used.
    pub async fn complete_setup(
        &self,
        token_hash: String,
        admin: NewAdmin,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                accounts::complete_setup(tx, &token_hash, &admin)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Creates an admin (a taken username is [`StoreError::Duplicate`]) and
    /// audits.
    pub async fn create_admin(&self, admin: NewAdmin, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                accounts::insert_admin(tx, &admin)?;
                audit::append(tx, &record)
            })
            .await
    }

    // --- login and sessions --------------------------------------------

    /// The admin with this username, for checking a password.
    pub async fn admin_credentials(&self, username: &str) -> Result<Option<AdminCredentials>, StoreError> {
        let username = username.to_owned();
        self.db
            .read(move |conn| accounts::admin_credentials(conn, &username))
            .await
    }

    /// Until when sign-in for `username` is locked, if it is.
    pub async fn login_locked_until(&self, username: &str) -> Result<Option<Timestamp>, StoreError> {
        let username = username.to_owned();
        self.db.read(move |conn| accounts::locked_until(conn, &username)).await
    }

    /// Counts a failed sign-in, locks the name per `policy`, and audits.
    pub async fn login_failed(
        &self,
        username: &str,
        now: Timestamp,
        policy: LockPolicy,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.db
            .write(move |tx| {
                accounts::count_failure(tx, &username, now, policy)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Clears the throttle, drops expired sessions, stores the new session
    /// and audits.
    /// `totp_step` is the time step of the accepted TOTP code; it must be
    /// later than the last one accepted (checked here, inside the write
    /// transaction, so two logins racing with one code cannot both pass).
    pub async fn login_succeeded(
        &self,
        username: &str,
        session: NewSession,
        totp_step: Option<i64>,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.db
            .write(move |tx| {
                if let Some(step) = totp_step {
                    admins::accept_totp_step(tx, session.admin_id, step)?;
                }
                accounts::clear_throttle(tx, &username)?;
                accounts::insert_session(tx, &session)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// The session whose cookie token has this digest, if it exists (expired
    /// or not: the caller decides).
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionInfo>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.db.read(move |conn| accounts::session(conn, &token_hash)).await
    }

    /// Deletes a session and audits.
    pub async fn logout(&self, token_hash: &str, record: AuditRecord) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.db
            .write(move |tx| {
                accounts::delete_session(tx, &token_hash)?;
                audit::append(tx, &record)
            })
            .await
    }

    // --- organizations -------------------------------------------------

    /// A page of organizations in creation order.
    pub async fn list_orgs(&self, query: OrgQuery) -> Result<Listed<Org>, StoreError> {
        self.db.read(move |conn| orgs::list(conn, &query)).await
    }

    /// One organization.
    pub async fn org(&self, id: OrgId) -> Result<Org, StoreError> {
        self.db.read(move |conn| orgs::get(conn, id)).await
    }

    /// Creates an organization and audits.
    pub async fn create_org(&self, org: Org, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                orgs::insert(tx, &org)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Renames an organization and audits; answers the changed row.
    pub async fn rename_org(&self, id: OrgId, name: Name, record: AuditRecord) -> Result<Org, StoreError> {
        self.db
            .write(move |tx| {
                let org = orgs::rename(tx, id, &name)?;
                audit::append(tx, &record)?;
                Ok(org)
            })
            .await
    }

    /// Deletes an organization and audits; answers the peers its devices
    /// had.
    pub async fn delete_org(&self, id: OrgId, record: AuditRecord) -> Result<tunnel::Touched, StoreError> {
        self.db
            .write(move |tx| {
                let touched = tunnel::touched_org(tx, id, None)?;
                orgs::delete(tx, id)?;
                audit::append(tx, &record)?;
                Ok(touched)
            })
            .await
    }

    // --- audit -----------------------------------------------------------

    /// Appends an entry on its own: for refusals, which change nothing else.
    pub async fn append_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.db.write(move |tx| audit::append(tx, &record)).await
    }

    /// A page of the audit log, newest first.
    pub async fn list_audit(&self, query: AuditQuery) -> Result<Listed<AuditEntry>, StoreError> {
        self.db.read(move |conn| audit::list(conn, &query)).await
    }

    /// Recomputes the hash chain.
    pub async fn verify_chain(&self) -> Result<AuditVerify, StoreError> {
        self.db.read(audit::verify).await
    }
}

/// [`crate::audit::verify_chain`]: opens `path` read-only, without
/// migrating, and recomputes the chain.
pub(crate) fn verify_chain_file(path: &Path) -> Result<AuditVerify, StoreError> {
    let conn = conn::open_reader(path)?;
    audit::verify(&conn)
}

/// [`crate::audit::export_chain`]: every entry of the database at `path`, in
/// chain order, to `each`; opened read-only, without migrating.
pub(crate) fn export_file(
    path: &Path,
    each: impl FnMut(AuditEntry) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let conn = conn::open_reader(path)?;
    audit::for_each(&conn, each)
}

/// Timestamps are stored as RFC 3339 UTC text with exactly six fractional
/// digits, so that text order is time order and SQL can compare them.
fn ts_to_sql(ts: Timestamp) -> String {
    format!("{ts:.6}")
}

fn ts_from_sql(column: &'static str, text: &str) -> Result<Timestamp, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        column,
        value: text.to_owned(),
    })
}

#[cfg(test)]
mod tests;
