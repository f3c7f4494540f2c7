//! Managing admins: listing, changing, deleting, and their TOTP state.
//!
//! The rule that keeps the control plane manageable lives here, inside the
//! write transaction: no change may leave zero active admins (role `admin`,
//! not disabled). Checking it in the handler instead would let two requests
//! racing each other demote the last two admins at once.

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::AdminDetail;
use schemas::values::{AdminId, Role};

use super::accounts::admin_from;
use super::conn::Cached;
use super::{Listed, Store, StoreError, ts_from_sql};
use crate::audit::AuditRecord;
use crate::store::audit;

/// What to change on an admin; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AdminChange {
    /// A new role.
    pub role: Option<Role>,
    /// A new argon2 PHC string.
    pub password_hash: Option<String>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// The session to keep when the password changes (the caller's own,
    /// when changing its own password); every other session of the admin ends.
    pub keep_session: Option<String>,
}

/// An admin's TOTP state, sealed values as stored.
#[derive(Debug, Clone, Default)]
pub struct TotpState {
    /// The active seed, sealed.
    pub active: Option<String>,
    /// The seed of an enrolment awaiting confirmation, sealed.
    pub pending: Option<String>,
    /// The last accepted time step.
    pub last_step: Option<i64>,
}

const DETAIL_COLUMNS: &str = "id, username, role, disabled, totp_sealed IS NOT NULL, created_at";

fn read_detail(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, bool, bool, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn detail_from(row: (String, String, String, bool, bool, String)) -> Result<AdminDetail, StoreError> {
    let (id, username, role, disabled, totp_enabled, created_at) = row;
    let admin = admin_from(&id, username, &role)?;
    Ok(AdminDetail {
        id: admin.id,
        username: admin.username,
        role: admin.role,
        disabled,
        totp_enabled,
        created_at: ts_from_sql("admins.created_at", &created_at)?,
    })
}

pub(super) fn get(conn: &Connection, id: AdminId) -> Result<AdminDetail, StoreError> {
    let row = conn
        .row(
            &format!("SELECT {DETAIL_COLUMNS} FROM admins WHERE id = ?1"),
            params![id.to_string()],
            read_detail,
        )
        .optional()?
        .ok_or(StoreError::NotFound)?;
    detail_from(row)
}

fn list(conn: &Connection, after: Option<AdminId>, limit: u32) -> Result<Listed<AdminDetail>, StoreError> {
    // Ids are v7 UUIDs: their text order is creation order.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DETAIL_COLUMNS} FROM admins WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after.map(|a| a.to_string()), i64::from(limit) + 1], read_detail)?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > limit as usize;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(detail_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listed { items, more })
}

/// Active admins other than `id`.
fn other_active_admins(conn: &Connection, id: AdminId) -> Result<i64, StoreError> {
    Ok(conn.row(
        "SELECT count(*) FROM admins WHERE role = 'admin' AND disabled = 0 AND id != ?1",
        params![id.to_string()],
        |r| r.get(0),
    )?)
}

/// Ends every session and API token of `id` (disable, delete).
fn end_credentials(conn: &Connection, id: AdminId) -> Result<(), StoreError> {
    conn.exec("DELETE FROM sessions WHERE admin_id = ?1", params![id.to_string()])?;
    conn.exec("DELETE FROM api_tokens WHERE admin_id = ?1", params![id.to_string()])?;
    Ok(())
}

fn update(conn: &Connection, id: AdminId, change: &AdminChange) -> Result<AdminDetail, StoreError> {
    let before = get(conn, id)?;
    let was_active = before.role == Role::Admin && !before.disabled;
    let role = change.role.unwrap_or(before.role);
    let disabled = change.disabled.unwrap_or(before.disabled);
    if was_active && (role != Role::Admin || disabled) && other_active_admins(conn, id)? == 0 {
        let field = if role != Role::Admin { "role" } else { "disabled" };
        return Err(StoreError::LastAdmin { field });
    }
    conn.exec(
        "UPDATE admins SET role = ?2, disabled = ?3, password_hash = coalesce(?4, password_hash) WHERE id = ?1",
        params![id.to_string(), role.as_str(), disabled, change.password_hash],
    )?;
    if disabled && !before.disabled {
        end_credentials(conn, id)?;
    }
    if change.password_hash.is_some() {
        // A new password ends the sessions an old one may have opened.
        conn.exec(
            "DELETE FROM sessions WHERE admin_id = ?1 AND token_hash IS NOT ?2",
            params![id.to_string(), change.keep_session],
        )?;
    }
    get(conn, id)
}

fn delete(conn: &Connection, id: AdminId) -> Result<(), StoreError> {
    let before = get(conn, id)?;
    if before.role == Role::Admin && !before.disabled && other_active_admins(conn, id)? == 0 {
        return Err(StoreError::LastAdmin { field: "id" });
    }
    // Sessions and tokens go by ON DELETE CASCADE too; explicit for clarity
    // and for databases opened without foreign keys.
    end_credentials(conn, id)?;
    conn.exec("DELETE FROM admins WHERE id = ?1", params![id.to_string()])?;
    Ok(())
}

fn totp(conn: &Connection, id: AdminId) -> Result<TotpState, StoreError> {
    conn.row(
        "SELECT totp_sealed, totp_pending_sealed, totp_last_step FROM admins WHERE id = ?1",
        params![id.to_string()],
        |r| {
            Ok(TotpState {
                active: r.get(0)?,
                pending: r.get(1)?,
                last_step: r.get(2)?,
            })
        },
    )
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Records `step` as the last accepted one, refusing it if it is not later.
pub(super) fn accept_totp_step(conn: &Connection, id: AdminId, step: i64) -> Result<(), StoreError> {
    let changed = conn.exec(
        "UPDATE admins SET totp_last_step = ?2
         WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
        params![id.to_string(), step],
    )?;
    if changed == 0 {
        return Err(StoreError::TotpReplay);
    }
    Ok(())
}

impl Store {
    /// A page of admins in creation order.
    pub async fn list_admins(&self, after: Option<AdminId>, limit: u32) -> Result<Listed<AdminDetail>, StoreError> {
        self.db.read(move |conn| list(conn, after, limit)).await
    }

    /// One admin.
    pub async fn admin(&self, id: AdminId) -> Result<AdminDetail, StoreError> {
        self.db.read(move |conn| get(conn, id)).await
    }

    /// The argon2 hash of an admin's password.
    pub async fn admin_password_hash(&self, id: AdminId) -> Result<String, StoreError> {
        self.db
            .read(move |conn| {
                conn.row(
                    "SELECT password_hash FROM admins WHERE id = ?1",
                    params![id.to_string()],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StoreError::NotFound)
            })
            .await
    }

    /// Changes an admin (refusing to leave no active admin), ends sessions
    /// and tokens as the change requires, and audits.
    pub async fn update_admin(
        &self,
        id: AdminId,
        change: AdminChange,
        record: AuditRecord,
    ) -> Result<AdminDetail, StoreError> {
        self.db
            .write(move |tx| {
                let detail = update(tx, id, &change)?;
                audit::append(tx, &record)?;
                Ok(detail)
            })
            .await
    }

    /// Deletes an admin with its sessions and tokens (not the last active
    /// admin) and audits.
    pub async fn delete_admin(&self, id: AdminId, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                delete(tx, id)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// An admin's TOTP state.
    pub async fn totp_state(&self, id: AdminId) -> Result<TotpState, StoreError> {
        self.db.read(move |conn| totp(conn, id)).await
    }

    /// Stores a pending enrolment (replacing an earlier pending one; an
    /// active seed stays active until the new one is confirmed) and audits.
    pub async fn set_totp_pending(&self, id: AdminId, sealed: String, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = tx.exec(
                    "UPDATE admins SET totp_pending_sealed = ?2 WHERE id = ?1",
                    params![id.to_string(), sealed],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                audit::append(tx, &record)
            })
            .await
    }

    /// Removes an admin's TOTP, active and pending, and audits.
    pub async fn reset_totp(&self, id: AdminId, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                // The replay floor goes too: it counted steps of the old seed.
                let changed = tx.exec(
                    "UPDATE admins SET totp_sealed = NULL, totp_pending_sealed = NULL, totp_last_step = NULL
                     WHERE id = ?1",
                    params![id.to_string()],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                audit::append(tx, &record)
            })
            .await
    }

    /// Makes the pending seed `pending` (as read when the code was checked)
    /// the active one, with `step` as the last accepted step, and audits.
    pub async fn confirm_totp(
        &self,
        id: AdminId,
        pending: String,
        step: i64,
        record: AuditRecord,
    ) -> Result<AdminDetail, StoreError> {
        self.db
            .write(move |tx| {
                // Only the enrolment whose code was checked: a new enrolment
                // started meanwhile must be confirmed with its own code.
                let changed = tx.exec(
                    "UPDATE admins SET totp_sealed = totp_pending_sealed, totp_pending_sealed = NULL,
                         totp_last_step = ?3
                     WHERE id = ?1 AND totp_pending_sealed = ?2",
                    params![id.to_string(), pending, step],
                )?;
                if changed == 0 {
                    return Err(StoreError::NoPendingTotp);
                }
                let detail = get(tx, id)?;
                audit::append(tx, &record)?;
                Ok(detail)
            })
            .await
    }
}
