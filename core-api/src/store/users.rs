//! Users, their devices and key links.

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::{Device, DeviceAddress, User};
use schemas::values::{DeviceId, Email, Name, OrgId, UserId, WgKey};

use super::conn::Cached;
use super::orgs::like_escape;
use super::resources::{NewDevice, NewLink, UserQuery};
use super::{Listed, StoreError, pool, ts_from_sql, ts_to_sql};
use crate::sealed::HostKey;

fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.to_owned(),
    }
}

/// Parses a stored value of a newtype.
pub(super) fn parse<T: std::str::FromStr>(column: &'static str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| corrupt(column, value))
}

type UserRow = (String, String, String, Option<String>, bool, String);

const USER_COLUMNS: &str = "id, org_id, name, email, disabled, created_at";

fn read_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn user_from(row: UserRow) -> Result<User, StoreError> {
    let (id, org_id, name, email, disabled, created_at) = row;
    Ok(User {
        id: parse::<UserId>("users.id", &id)?,
        org_id: parse::<OrgId>("users.org_id", &org_id)?,
        name: parse::<Name>("users.name", &name)?,
        email: email.as_deref().map(|e| parse::<Email>("users.email", e)).transpose()?,
        disabled,
        created_at: ts_from_sql("users.created_at", &created_at)?,
    })
}

pub(super) fn list_users(conn: &Connection, org: OrgId, query: &UserQuery) -> Result<Listed<User>, StoreError> {
    // An unknown org is a 404, not an empty list.
    super::orgs::get(conn, org)?;
    let after = query.after.map(|id| id.to_string());
    let pattern = query
        .search
        .as_deref()
        .map(|s| format!("%{}%", like_escape(&s.to_lowercase())));
    let mut stmt = conn.prepare_cached(&list_users_sql(pattern.is_some()))?;
    let rows = stmt
        .query_map(
            params![org.to_string(), after, pattern, i64::from(query.limit) + 1],
            read_user,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = rows.into_iter().map(user_from).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > query.limit as usize;
    items.truncate(query.limit as usize);
    Ok(Listed { items, more })
}

/// A page of an organization's users: `?1` the org, `?2` the id to start
/// after, `?3` the search pattern, `?4` the page size. SQLite compiles a
/// statement with `LIKE ?` again whenever the pattern changes, so the page
/// without a search (the common call) has a statement of its own, compiled
/// once. Both read the index `users_org_search`, which holds the search
/// keys: a search tests each user there and reads a row only when it
/// matches.
pub(super) fn list_users_sql(search: bool) -> String {
    let search = if search {
        "(name_key LIKE ?3 ESCAPE '\\' OR email_key LIKE ?3 ESCAPE '\\')"
    } else {
        "?3 IS NULL"
    };
    format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE org_id = ?1 AND (?2 IS NULL OR id > ?2) AND {search}
         ORDER BY id LIMIT ?4"
    )
}

pub(super) fn get_user(conn: &Connection, id: UserId) -> Result<User, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row(params![id.to_string()], read_user)
        .optional()?
        .ok_or(StoreError::NotFound)?;
    user_from(row)
}

pub(super) fn insert_user(conn: &Connection, user: &User) -> Result<(), StoreError> {
    super::orgs::get(conn, user.org_id)?;
    conn.exec(
        "INSERT INTO users (id, org_id, name, name_key, email, email_key, disabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            user.id.to_string(),
            user.org_id.to_string(),
            user.name.as_str(),
            user.name.as_str().to_lowercase(),
            user.email.as_ref().map(Email::as_str),
            user.email.as_ref().map(|e| e.as_str().to_lowercase()),
            user.disabled,
            ts_to_sql(user.created_at),
        ],
    )?;
    Ok(())
}

pub(super) fn update_user(conn: &Connection, user: &User) -> Result<(), StoreError> {
    let n = conn.exec(
        "UPDATE users SET name = ?2, name_key = ?3, email = ?4, email_key = ?5, disabled = ?6 WHERE id = ?1",
        params![
            user.id.to_string(),
            user.name.as_str(),
            user.name.as_str().to_lowercase(),
            user.email.as_ref().map(Email::as_str),
            user.email.as_ref().map(|e| e.as_str().to_lowercase()),
            user.disabled,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn delete_user(conn: &Connection, id: UserId) -> Result<(), StoreError> {
    // Devices, peers (and through the trigger, their addresses) and links
    // go with the user by cascade.
    let n = conn.exec("DELETE FROM users WHERE id = ?1", params![id.to_string()])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

// --- devices -------------------------------------------------------------

type DeviceRow = (String, String, String, String, bool, String);

const DEVICE_COLUMNS: &str = "id, user_id, name, public_key, private_key_sealed IS NOT NULL, created_at";

fn read_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

/// A device's addresses, by server.
fn addresses(conn: &Connection, device: &str) -> Result<Vec<DeviceAddress>, StoreError> {
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare_cached("SELECT server_id, address, address6 FROM peers WHERE device_id = ?1 ORDER BY server_id")?
        .query_map(params![device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(server, address, address6)| {
            Ok(DeviceAddress {
                server_id: parse("peers.server_id", &server)?,
                address: parse("peers.address", &address)?,
                address6: address6.as_deref().map(|a| parse("peers.address6", a)).transpose()?,
            })
        })
        .collect()
}

fn device_from(conn: &Connection, row: DeviceRow) -> Result<Device, StoreError> {
    let (id, user_id, name, public_key, key_generated, created_at) = row;
    Ok(Device {
        addresses: addresses(conn, &id)?,
        id: parse::<DeviceId>("devices.id", &id)?,
        user_id: parse::<UserId>("devices.user_id", &user_id)?,
        name: parse::<Name>("devices.name", &name)?,
        public_key: parse::<WgKey>("devices.public_key", &public_key)?,
        key_generated,
        created_at: ts_from_sql("devices.created_at", &created_at)?,
    })
}

pub(super) fn list_devices(
    conn: &Connection,
    user: UserId,
    after: Option<DeviceId>,
    limit: u32,
) -> Result<Listed<Device>, StoreError> {
    get_user(conn, user)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(
            params![user.to_string(), after.map(|a| a.to_string()), i64::from(limit) + 1],
            read_device,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = rows
        .into_iter()
        .map(|r| device_from(conn, r))
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Listed { items, more })
}

pub(super) fn get_device(conn: &Connection, id: DeviceId) -> Result<Device, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"))?
        .query_row(params![id.to_string()], read_device)
        .optional()?
        .ok_or(StoreError::NotFound)?;
    device_from(conn, row)
}

/// Whether a WireGuard public key is in use, by a device or a server: two
/// peers with one key would be indistinguishable to the tunnel.
pub(super) fn key_taken(conn: &Connection, key: &WgKey) -> Result<bool, StoreError> {
    Ok(conn.row(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE public_key = ?1)
             OR EXISTS (SELECT 1 FROM servers WHERE public_key = ?1)",
        params![key.as_str()],
        |r| r.get(0),
    )?)
}

pub(super) fn insert_device(conn: &Connection, key: &HostKey, new: &NewDevice) -> Result<(), StoreError> {
    let user = get_user(conn, new.device.user_id)?;
    if key_taken(conn, &new.device.public_key)? {
        return Err(StoreError::Duplicate { field: "public_key" });
    }
    let id = new.device.id.to_string();
    conn.exec(
        "INSERT INTO devices (id, user_id, name, public_key, private_key_sealed, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            new.device.user_id.to_string(),
            new.device.name.as_str(),
            new.device.public_key.as_str(),
            new.private_key_sealed,
            ts_to_sql(new.device.created_at),
        ],
    )?;
    pool::add_device_peers(conn, key, &id, &user.org_id.to_string())
}

pub(super) fn delete_device(conn: &Connection, id: DeviceId) -> Result<(), StoreError> {
    let n = conn.exec("DELETE FROM devices WHERE id = ?1", params![id.to_string()])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The sealed private key of a device, when the server generated it.
pub(super) fn device_private_sealed(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT private_key_sealed FROM devices WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?
        .flatten())
}

// --- key links -----------------------------------------------------------

pub(super) fn insert_link(conn: &Connection, link: &NewLink) -> Result<(), StoreError> {
    get_user(conn, link.user_id)?;
    conn.exec(
        "INSERT INTO key_links (token_hash, user_id, created_at, expires_at, max_uses) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            link.token_hash,
            link.user_id.to_string(),
            ts_to_sql(link.created_at),
            ts_to_sql(link.expires_at),
            link.max_uses,
        ],
    )?;
    Ok(())
}

/// Counts one use of the link with this token digest and answers its user.
pub(super) fn use_link(conn: &Connection, token_hash: &str, now: jiff::Timestamp) -> Result<UserId, StoreError> {
    const GONE: &str = "this key link has expired or been used up; ask for a new one";
    let row: Option<(String, String, i64, i64)> = conn
        .prepare_cached("SELECT user_id, expires_at, max_uses, uses FROM key_links WHERE token_hash = ?1")?
        .query_row(params![token_hash], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let (user_id, expires_at, max_uses, uses) = row.ok_or(StoreError::NotFound)?;
    if ts_from_sql("key_links.expires_at", &expires_at)? <= now || uses >= max_uses {
        return Err(StoreError::Gone(GONE));
    }
    let user = get_user(conn, parse("key_links.user_id", &user_id)?)?;
    if user.disabled {
        return Err(StoreError::Gone(GONE));
    }
    conn.exec(
        "UPDATE key_links SET uses = uses + 1 WHERE token_hash = ?1",
        params![token_hash],
    )?;
    Ok(user.id)
}
