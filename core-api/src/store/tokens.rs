//! API tokens: stored as the SHA-256 of the token only, owned by the admin
//! who made them (deleted with them, ended when they are disabled).

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::{Admin, TokenInfo};
use schemas::values::{AdminId, Name, Role, TokenId};

use super::accounts::admin_from;
use super::conn::Cached;
use super::{Listed, Store, StoreError, ts_from_sql, ts_to_sql};
use crate::audit::AuditRecord;
use crate::store::audit;

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its public description (no secret).
    pub info: TokenInfo,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
}

/// A stored token and its creator, as authentication needs them.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// The token's id.
    pub id: TokenId,
    /// The token's role.
    pub role: Role,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Its creator, with the creator's own role.
    pub admin: Admin,
    /// Whether the creator is disabled.
    pub admin_disabled: bool,
}

fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.to_owned(),
    }
}

type InfoRow = (String, String, String, String, String, String);

fn info_from(row: InfoRow) -> Result<TokenInfo, StoreError> {
    let (id, name, role, admin_id, created_at, expires_at) = row;
    Ok(TokenInfo {
        id: id.parse().map_err(|_| corrupt("api_tokens.id", &id))?,
        name: Name::try_from(name.clone()).map_err(|_| corrupt("api_tokens.name", &name))?,
        role: role.parse().map_err(|_| corrupt("api_tokens.role", &role))?,
        admin_id: admin_id
            .parse()
            .map_err(|_| corrupt("api_tokens.admin_id", &admin_id))?,
        created_at: ts_from_sql("api_tokens.created_at", &created_at)?,
        expires_at: ts_from_sql("api_tokens.expires_at", &expires_at)?,
    })
}

fn list(
    conn: &Connection,
    owner: Option<AdminId>,
    after: Option<TokenId>,
    limit: u32,
) -> Result<Listed<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, role, admin_id, created_at, expires_at FROM api_tokens
         WHERE (?1 IS NULL OR admin_id = ?1) AND (?2 IS NULL OR id > ?2)
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(
            params![
                owner.map(|o| o.to_string()),
                after.map(|a| a.to_string()),
                i64::from(limit) + 1
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?
        .collect::<Result<Vec<InfoRow>, _>>()?;
    let more = rows.len() > limit as usize;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(info_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Listed { items, more })
}

fn by_hash(conn: &Connection, token_hash: &str) -> Result<Option<TokenAuth>, StoreError> {
    let row: Option<(String, String, String, String, String, String, bool)> = conn
        .row(
            "SELECT t.id, t.role, t.expires_at, a.id, a.username, a.role, a.disabled
             FROM api_tokens t JOIN admins a ON a.id = t.admin_id
             WHERE t.token_hash = ?1",
            params![token_hash],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    row.map(|(id, role, expires_at, admin_id, username, admin_role, disabled)| {
        Ok(TokenAuth {
            id: id.parse().map_err(|_| corrupt("api_tokens.id", &id))?,
            role: role.parse().map_err(|_| corrupt("api_tokens.role", &role))?,
            expires_at: ts_from_sql("api_tokens.expires_at", &expires_at)?,
            admin: admin_from(&admin_id, username, &admin_role)?,
            admin_disabled: disabled,
        })
    })
    .transpose()
}

impl Store {
    /// Stores a new token and audits.
    pub async fn create_token(&self, token: NewToken, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let info = &token.info;
                tx.exec(
                    "INSERT INTO api_tokens (id, token_hash, admin_id, name, role, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        info.id.to_string(),
                        token.token_hash,
                        info.admin_id.to_string(),
                        info.name.as_str(),
                        info.role.as_str(),
                        ts_to_sql(info.created_at),
                        ts_to_sql(info.expires_at),
                    ],
                )?;
                audit::append(tx, &record)
            })
            .await
    }

    /// A page of tokens, of `owner` only when given, in creation order.
    pub async fn list_tokens(
        &self,
        owner: Option<AdminId>,
        after: Option<TokenId>,
        limit: u32,
    ) -> Result<Listed<TokenInfo>, StoreError> {
        self.db.read(move |conn| list(conn, owner, after, limit)).await
    }

    /// Deletes a token (of `owner` only, when given: someone else's is
    /// [`StoreError::NotFound`], so ids of others' tokens are not confirmed)
    /// and audits.
    pub async fn delete_token(
        &self,
        id: TokenId,
        owner: Option<AdminId>,
        record: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let deleted = tx.exec(
                    "DELETE FROM api_tokens WHERE id = ?1 AND (?2 IS NULL OR admin_id = ?2)",
                    params![id.to_string(), owner.map(|o| o.to_string())],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                audit::append(tx, &record)
            })
            .await
    }

    /// The token whose SHA-256 is `token_hash`, with its creator (expired or
    /// not: the caller decides).
    pub async fn token_auth(&self, token_hash: &str) -> Result<Option<TokenAuth>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.db.read(move |conn| by_hash(conn, &token_hash)).await
    }
}
