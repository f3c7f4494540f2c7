//! The audit table: append, list, verify.

use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::{AuditEntry, AuditVerify, Outcome};

use super::conn::Cached;
use super::{AuditQuery, Listed, StoreError, ts_from_sql, ts_to_sql};
use crate::audit::{AuditRecord, ChainFields, ChainWalker, GENESIS_HASH, entry_hash};

/// Appends `record` after the current last entry. Must run on the writer
/// (inside its transaction): the read of the last hash and the insert are
/// then atomic with respect to other appends.
pub(super) fn append(conn: &Connection, record: &AuditRecord) -> Result<(), StoreError> {
    let last: Option<(i64, String)> = conn
        .row("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (id, prev_hash) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let time = ts_to_sql(record.time);
    let fields = ChainFields {
        id,
        time: &time,
        actor: &record.actor,
        client_addr: record.client_addr.as_deref(),
        request_id: record.request_id.as_deref(),
        action: &record.action,
        target: record.target.as_deref(),
        outcome: record.outcome.as_str(),
        detail: record.detail.as_deref(),
    };
    let hash = entry_hash(&prev_hash, &fields);
    conn.exec(
        "INSERT INTO audit (id, time, actor, client_addr, request_id, action, target, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            time,
            fields.actor,
            fields.client_addr,
            fields.request_id,
            fields.action,
            fields.target,
            fields.outcome,
            fields.detail,
            prev_hash,
            hash,
        ],
    )?;
    Ok(())
}

/// The stored text of one row, in column order.
struct Row {
    id: i64,
    time: String,
    actor: String,
    client_addr: Option<String>,
    request_id: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

const COLUMNS: &str = "id, time, actor, client_addr, request_id, action, target, outcome, detail, prev_hash, hash";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        time: r.get(1)?,
        actor: r.get(2)?,
        client_addr: r.get(3)?,
        request_id: r.get(4)?,
        action: r.get(5)?,
        target: r.get(6)?,
        outcome: r.get(7)?,
        detail: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

impl Row {
    fn fields(&self) -> ChainFields<'_> {
        ChainFields {
            id: self.id,
            time: &self.time,
            actor: &self.actor,
            client_addr: self.client_addr.as_deref(),
            request_id: self.request_id.as_deref(),
            action: &self.action,
            target: self.target.as_deref(),
            outcome: &self.outcome,
            detail: self.detail.as_deref(),
        }
    }

    fn into_entry(self) -> Result<AuditEntry, StoreError> {
        let outcome = match self.outcome.as_str() {
            "success" => Outcome::Success,
            "denied" => Outcome::Denied,
            "error" => Outcome::Error,
            other => {
                return Err(StoreError::Corrupt {
                    column: "audit.outcome",
                    value: other.to_owned(),
                });
            }
        };
        Ok(AuditEntry {
            id: self.id,
            time: ts_from_sql("audit.time", &self.time)?,
            actor: self.actor,
            client_addr: self.client_addr,
            request_id: self.request_id,
            action: self.action,
            target: self.target,
            outcome,
            detail: self.detail,
            hash: self.hash,
            prev_hash: self.prev_hash,
        })
    }
}

pub(super) fn list(conn: &Connection, query: &AuditQuery) -> Result<Listed<AuditEntry>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (?1 IS NULL OR id < ?1)
           AND (?2 IS NULL OR actor = ?2)
           AND (?3 IS NULL OR action = ?3)
           AND (?4 IS NULL OR time >= ?4)
         ORDER BY id DESC
         LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(
            params![
                query.before,
                query.actor,
                query.action,
                query.since.map(ts_to_sql),
                i64::from(query.limit) + 1,
            ],
            read_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > query.limit as usize;
    let items = rows
        .into_iter()
        .take(query.limit as usize)
        .map(Row::into_entry)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listed { items, more })
}

pub(super) fn verify(conn: &Connection) -> Result<AuditVerify, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY id"))?;
    let mut rows = stmt.query_map([], read_row)?;
    let mut walker = ChainWalker::new();
    // Streamed row by row: the log can be far larger than memory allows.
    for row in &mut rows {
        let row = row?;
        walker.push(&row.fields(), &row.prev_hash, &row.hash);
    }
    Ok(walker.finish())
}

/// Feeds every entry to `each`, in chain (id) order, streaming.
pub(super) fn for_each(
    conn: &Connection,
    mut each: impl FnMut(AuditEntry) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY id"))?;
    let mut rows = stmt.query_map([], read_row)?;
    let mut count = 0;
    for row in &mut rows {
        each(row?.into_entry()?)?;
        count += 1;
    }
    Ok(count)
}
