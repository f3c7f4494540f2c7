//! The hash-chained audit log: what an entry commits to, and how to check it.
//!
//! Each entry's `hash` is `hex(sha256(prev_hash + "\n" + J))`, where `J` is
//! the canonical JSON array `[id, time, actor, client_addr, request_id,
//! action, target, outcome, detail]` of the entry as stored (absent values are
//! `null`), and the first entry's `prev_hash` is 64 zeros. Changing, removing
//! or reordering any entry therefore breaks the chain at that entry or the
//! next one, and [`verify_chain`] names where.
//!
//! The hash is computed over the stored text, not over parsed values, so an
//! offline verifier needs nothing but the database file.

use std::path::Path;

use jiff::Timestamp;
use schemas::api::{AuditVerify, Outcome};
use sha2::{Digest, Sha256};

use crate::store::{self, StoreError};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry to append; the store assigns `id`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened.
    pub time: Timestamp,
    /// `admin:<username>` or `anonymous`.
    pub actor: String,
    /// The client's address as the edge saw it.
    pub client_addr: Option<String>,
    /// The edge's request id.
    pub request_id: Option<String>,
    /// What was attempted, e.g. `org.create`.
    pub action: String,
    /// What it was done to, e.g. `org:<id>`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// A short reason for refusals and errors.
    pub detail: Option<String>,
}

/// The stored text of an entry's hashed fields.
#[derive(Debug, Clone, Copy)]
pub struct ChainFields<'a> {
    /// Position in the chain, from 1.
    pub id: i64,
    /// The stored RFC 3339 time.
    pub time: &'a str,
    /// The actor.
    pub actor: &'a str,
    /// The client address.
    pub client_addr: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
    /// The action.
    pub action: &'a str,
    /// The target.
    pub target: Option<&'a str>,
    /// `success`, `denied` or `error`.
    pub outcome: &'a str,
    /// The detail.
    pub detail: Option<&'a str>,
}

/// The hash of an entry whose predecessor's hash is `prev_hash`.
pub fn entry_hash(prev_hash: &str, fields: &ChainFields<'_>) -> String {
    let canonical = serde_json::json!([
        fields.id,
        fields.time,
        fields.actor,
        fields.client_addr,
        fields.request_id,
        fields.action,
        fields.target,
        fields.outcome,
        fields.detail,
    ]);
    let mut digest = Sha256::new();
    digest.update(prev_hash.as_bytes());
    digest.update(b"\n");
    digest.update(canonical.to_string().as_bytes());
    hex::encode(digest.finalize())
}

/// Recomputes the chain of the database at `db_path`, opened read-only and
/// without running migrations, so it works on a copy or a backup while the
/// core is stopped (or running: WAL readers see a consistent snapshot).
pub fn verify_chain(db_path: &Path) -> Result<AuditVerify, StoreError> {
    store::verify_chain_file(db_path)
}

/// Writes every entry of the database at `db_path` to `out` as JSON lines,
/// one [`schemas::api::AuditEntry`] per line, in chain order; answers how
/// many. Like [`verify_chain`], it opens the file read-only.
pub fn export_chain(db_path: &Path, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
    store::export_file(db_path, |entry| {
        let line = serde_json::to_string(&entry).map_err(|e| StoreError::Export(std::io::Error::other(e)))?;
        writeln!(out, "{line}").map_err(StoreError::Export)
    })
}

/// Walks entries in id order and reports the first one that does not fit.
/// `entries` counts every entry, including those after a break.
#[derive(Debug)]
pub(crate) struct ChainWalker {
    expected_id: i64,
    prev_hash: String,
    entries: u64,
    first_bad_id: Option<i64>,
}

impl ChainWalker {
    pub(crate) fn new() -> Self {
        Self {
            expected_id: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            entries: 0,
            first_bad_id: None,
        }
    }

    /// Feeds the next entry (in id order) with its stored hashes.
    pub(crate) fn push(&mut self, fields: &ChainFields<'_>, prev_hash: &str, hash: &str) {
        self.entries += 1;
        if self.first_bad_id.is_some() {
            return;
        }
        // A gap in ids means entries were removed; the hash check alone
        // would also catch a removal in the middle, but not one at the start.
        let fits =
            fields.id == self.expected_id && prev_hash == self.prev_hash && entry_hash(prev_hash, fields) == hash;
        if fits {
            self.expected_id += 1;
            hash.clone_into(&mut self.prev_hash);
        } else {
            self.first_bad_id = Some(fields.id);
        }
    }

    pub(crate) fn finish(self) -> AuditVerify {
        AuditVerify {
            ok: self.first_bad_id.is_none(),
            entries: self.entries,
            first_bad_id: self.first_bad_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(id: i64, actor: &str) -> ChainFields<'_> {
        ChainFields {
            id,
            time: "2025-01-01T00:00:00.000000Z",
            actor,
            client_addr: Some("203.0.113.9:4000"),
            request_id: None,
            action: "org.create",
            target: Some("org:x"),
            outcome: "success",
            detail: None,
        }
    }

    #[test]
    fn hash_is_over_prev_newline_and_canonical_json() {
        let f = fields(1, "admin:alice");
        let expected = hex::encode(Sha256::digest(
            format!(
                "{GENESIS_HASH}\n[1,\"2025-01-01T00:00:00.000000Z\",\"admin:alice\",\"203.0.113.9:4000\",null,\"org.create\",\"org:x\",\"success\",null]"
            )
            .as_bytes(),
        ));
        assert_eq!(entry_hash(GENESIS_HASH, &f), expected);
    }

    #[test]
    fn walker_names_the_first_bad_entry() {
        let one = fields(1, "a");
        let h1 = entry_hash(GENESIS_HASH, &one);
        let two = fields(2, "b");
        let h2 = entry_hash(&h1, &two);
        let three = fields(3, "c");
        let h3 = entry_hash(&h2, &three);

        let mut ok = ChainWalker::new();
        ok.push(&one, GENESIS_HASH, &h1);
        ok.push(&two, &h1, &h2);
        ok.push(&three, &h2, &h3);
        assert_eq!(
            ok.finish(),
            AuditVerify {
                ok: true,
                entries: 3,
                first_bad_id: None
            }
        );

        let mut tampered = ChainWalker::new();
        tampered.push(&one, GENESIS_HASH, &h1);
        tampered.push(&fields(2, "mallory"), &h1, &h2);
        tampered.push(&three, &h2, &h3);
        assert_eq!(
            tampered.finish(),
            AuditVerify {
                ok: false,
                entries: 3,
                first_bad_id: Some(2)
            }
        );

        let mut removed = ChainWalker::new();
        removed.push(&one, GENESIS_HASH, &h1);
        removed.push(&three, &h2, &h3);
        assert_eq!(removed.finish().first_bad_id, Some(3));
    }
}
