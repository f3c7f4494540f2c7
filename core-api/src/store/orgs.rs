//! Organizations.

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::Org;
use schemas::values::{Name, OrgId};

use super::conn::Cached;
use super::{Listed, OrgQuery, StoreError, ts_from_sql, ts_to_sql};

/// The case-insensitive key of a name: what uniqueness and search use.
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Escapes `%`, `_` and the escape character itself for `LIKE ... ESCAPE '\'`,
/// so a search for `50%` finds "50%" and not everything starting with "50".
pub(super) fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn org_from(id: &str, name: String, created_at: &str) -> Result<Org, StoreError> {
    Ok(Org {
        id: id.parse::<OrgId>().map_err(|_| StoreError::Corrupt {
            column: "orgs.id",
            value: id.to_owned(),
        })?,
        name: Name::try_from(name.clone()).map_err(|_| StoreError::Corrupt {
            column: "orgs.name",
            value: name,
        })?,
        created_at: ts_from_sql("orgs.created_at", created_at)?,
    })
}

type OrgRow = (String, String, String);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrgRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

pub(super) fn list(conn: &Connection, query: &OrgQuery) -> Result<Listed<Org>, StoreError> {
    let after = query.after.map(|id| id.to_string());
    let pattern = query
        .search
        .as_deref()
        .map(|s| format!("%{}%", like_escape(&name_key(s))));
    // One row more than asked for tells whether another page follows.
    // As for users: a statement of its own for the page without a search.
    let mut stmt = conn.prepare_cached(if pattern.is_some() {
        "SELECT id, name, created_at FROM orgs
         WHERE (?1 IS NULL OR id > ?1) AND name_key LIKE ?2 ESCAPE '\\'
         ORDER BY id LIMIT ?3"
    } else {
        "SELECT id, name, created_at FROM orgs
         WHERE (?1 IS NULL OR id > ?1) AND ?2 IS NULL
         ORDER BY id LIMIT ?3"
    })?;
    let rows = stmt
        .query_map(params![after, pattern, i64::from(query.limit) + 1], read_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = rows
        .into_iter()
        .map(|(id, name, created_at)| org_from(&id, name, &created_at))
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > query.limit as usize;
    items.truncate(query.limit as usize);
    Ok(Listed { items, more })
}

pub(super) fn get(conn: &Connection, id: OrgId) -> Result<Org, StoreError> {
    let row = conn
        .row(
            "SELECT id, name, created_at FROM orgs WHERE id = ?1",
            params![id.to_string()],
            read_row,
        )
        .optional()?;
    let (id, name, created_at) = row.ok_or(StoreError::NotFound)?;
    org_from(&id, name, &created_at)
}

fn name_taken(conn: &Connection, name: &str, except: Option<OrgId>) -> Result<bool, StoreError> {
    Ok(conn.row(
        "SELECT EXISTS (SELECT 1 FROM orgs WHERE name_key = ?1 AND (?2 IS NULL OR id <> ?2))",
        params![name_key(name), except.map(|id| id.to_string())],
        |r| r.get(0),
    )?)
}

pub(super) fn insert(conn: &Connection, org: &Org) -> Result<(), StoreError> {
    // Checked first so the refusal names the field; the unique index is the
    // backstop. Only one writer runs at a time, so the check cannot race.
    if name_taken(conn, org.name.as_str(), None)? {
        return Err(StoreError::Duplicate { field: "name" });
    }
    conn.exec(
        "INSERT INTO orgs (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            org.id.to_string(),
            org.name.as_str(),
            name_key(org.name.as_str()),
            ts_to_sql(org.created_at),
        ],
    )?;
    Ok(())
}

pub(super) fn rename(conn: &Connection, id: OrgId, name: &Name) -> Result<Org, StoreError> {
    // Existence first: renaming a missing org to a taken name is a 404.
    get(conn, id)?;
    if name_taken(conn, name.as_str(), Some(id))? {
        return Err(StoreError::Duplicate { field: "name" });
    }
    conn.exec(
        "UPDATE orgs SET name = ?2, name_key = ?3 WHERE id = ?1",
        params![id.to_string(), name.as_str(), name_key(name.as_str())],
    )?;
    get(conn, id)
}

pub(super) fn delete(conn: &Connection, id: OrgId) -> Result<(), StoreError> {
    let n = conn.exec("DELETE FROM orgs WHERE id = ?1", params![id.to_string()])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
