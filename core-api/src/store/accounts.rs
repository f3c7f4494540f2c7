//! Admins, the setup row, sessions and the login throttle.

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::Admin;
use schemas::values::{AdminId, Role, Username};

use super::conn::Cached;
use super::{
    AdminCredentials, LockPolicy, NewAdmin, NewSession, SessionInfo, SetupState, StoreError, ts_from_sql, ts_to_sql,
};
use crate::crypto::digest_eq;
use jiff::Timestamp;

/// Builds an [`Admin`] from its stored text.
pub(super) fn admin_from(id: &str, username: String, role: &str) -> Result<Admin, StoreError> {
    let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
        column,
        value: value.to_owned(),
    };
    Ok(Admin {
        id: id.parse::<AdminId>().map_err(|_| corrupt("admins.id", id))?,
        username: Username::try_from(username.clone()).map_err(|_| corrupt("admins.username", &username))?,
        role: role.parse::<Role>().map_err(|_| corrupt("admins.role", role))?,
    })
}

pub(super) fn setup_state(conn: &Connection) -> Result<SetupState, StoreError> {
    let row: Option<(Option<String>, Option<String>)> = conn
        .row("SELECT token_hash, used_at FROM setup WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let admin_exists: bool = conn.row("SELECT EXISTS (SELECT 1 FROM admins)", [], |r| r.get(0))?;
    let (token_hash, used_at) = row.unwrap_or_default();
    Ok(SetupState {
        token_hash,
        used: used_at.is_some(),
        admin_exists,
    })
}

pub(super) fn issue_setup_token(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    conn.exec(
        "INSERT INTO setup (id, token_hash, used_at) VALUES (1, ?1, NULL)
         ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash WHERE used_at IS NULL",
        params![token_hash],
    )?;
    Ok(())
}

pub(super) fn complete_setup(conn: &Connection, token_hash: &str, new: &NewAdmin) -> Result<(), StoreError> {
    // Checked again inside the write transaction: two setup requests racing
    // each other must not both create an admin.
    let state = setup_state(conn)?;
    if state.is_done() {
        return Err(StoreError::SetupDone);
    }
    match &state.token_hash {
        Some(stored) if digest_eq(stored, token_hash) => {}
        _ => return Err(StoreError::WrongSetupToken),
    }
    insert_admin(conn, new)?;
    conn.exec(
        "UPDATE setup SET used_at = ?1, token_hash = NULL WHERE id = 1",
        params![ts_to_sql(new.created_at)],
    )?;
    Ok(())
}

pub(super) fn insert_admin(conn: &Connection, new: &NewAdmin) -> Result<(), StoreError> {
    let taken: bool = conn.row(
        "SELECT EXISTS (SELECT 1 FROM admins WHERE username = ?1)",
        params![new.admin.username.as_str()],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Duplicate { field: "username" });
    }
    conn.exec(
        "INSERT INTO admins (id, username, password_hash, role, disabled, created_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        params![
            new.admin.id.to_string(),
            new.admin.username.as_str(),
            new.password_hash,
            new.admin.role.as_str(),
            ts_to_sql(new.created_at),
        ],
    )?;
    Ok(())
}

pub(super) fn admin_credentials(conn: &Connection, username: &str) -> Result<Option<AdminCredentials>, StoreError> {
    let row: Option<(String, String, String, String, bool, Option<String>)> = conn
        .row(
            "SELECT id, username, role, password_hash, disabled, totp_sealed FROM admins WHERE username = ?1",
            params![username],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    row.map(|(id, username, role, password_hash, disabled, totp_sealed)| {
        Ok(AdminCredentials {
            admin: admin_from(&id, username, &role)?,
            password_hash,
            disabled,
            totp_sealed,
        })
    })
    .transpose()
}

pub(super) fn locked_until(conn: &Connection, username: &str) -> Result<Option<Timestamp>, StoreError> {
    let until: Option<Option<String>> = conn
        .row(
            "SELECT locked_until FROM login_throttle WHERE username = ?1",
            params![username],
            |r| r.get(0),
        )
        .optional()?;
    until
        .flatten()
        .map(|t| ts_from_sql("login_throttle.locked_until", &t))
        .transpose()
}

pub(super) fn count_failure(
    conn: &Connection,
    username: &str,
    now: Timestamp,
    policy: LockPolicy,
) -> Result<(), StoreError> {
    let failures: i64 = conn.row(
        "INSERT INTO login_throttle (username, failures, locked_until) VALUES (?1, 1, NULL)
         ON CONFLICT (username) DO UPDATE SET failures = failures + 1
         RETURNING failures",
        params![username],
        |r| r.get(0),
    )?;
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let until = policy(failures)
        .and_then(|lock| now.checked_add(lock).ok())
        .map(ts_to_sql);
    conn.exec(
        "UPDATE login_throttle SET locked_until = ?2 WHERE username = ?1",
        params![username, until],
    )?;
    Ok(())
}

pub(super) fn clear_throttle(conn: &Connection, username: &str) -> Result<(), StoreError> {
    conn.exec("DELETE FROM login_throttle WHERE username = ?1", params![username])?;
    Ok(())
}

pub(super) fn insert_session(conn: &Connection, session: &NewSession) -> Result<(), StoreError> {
    // Sign-in is a good moment to forget sessions nobody can use any more.
    conn.exec(
        "DELETE FROM sessions WHERE expires_at <= ?1",
        params![ts_to_sql(session.created_at)],
    )?;
    conn.exec(
        "INSERT INTO sessions (token_hash, admin_id, csrf_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            session.token_hash,
            session.admin_id.to_string(),
            session.csrf_hash,
            ts_to_sql(session.created_at),
            ts_to_sql(session.expires_at),
        ],
    )?;
    Ok(())
}

pub(super) fn session(conn: &Connection, token_hash: &str) -> Result<Option<SessionInfo>, StoreError> {
    let row: Option<(String, String, String, bool, String, String)> = conn
        .row(
            "SELECT a.id, a.username, a.role, a.disabled, s.csrf_hash, s.expires_at
             FROM sessions s JOIN admins a ON a.id = s.admin_id
             WHERE s.token_hash = ?1",
            params![token_hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    row.map(|(id, username, role, disabled, csrf_hash, expires_at)| {
        Ok(SessionInfo {
            admin: admin_from(&id, username, &role)?,
            admin_disabled: disabled,
            csrf_hash,
            expires_at: ts_from_sql("sessions.expires_at", &expires_at)?,
        })
    })
    .transpose()
}

pub(super) fn delete_session(conn: &Connection, token_hash: &str) -> Result<(), StoreError> {
    conn.exec("DELETE FROM sessions WHERE token_hash = ?1", params![token_hash])?;
    Ok(())
}
