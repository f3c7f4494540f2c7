//! Key/value settings, with defaults for the ones never set. Written by
//! `PATCH /api/v1/settings` in the same transaction as its audit entry.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// The address devices reach the servers at (`Endpoint` in profiles).
pub(super) const PUBLIC_ADDRESS: &str = "public_address";

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?)
}

pub(super) fn set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The machine's host name, the default public address until one is set.
/// Only a name made of DNS characters is used; anything else (or none)
/// falls back to `localhost`, so a profile never carries odd bytes.
pub(super) fn default_public_address() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    let tidy = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if tidy { name.to_owned() } else { "localhost".to_owned() }
}
