//! `rampart audit verify` and `rampart audit export`: the audit log read
//! straight from the database file, without the core running.
//!
//! Both open the database read-only and never migrate it, so they are safe
//! on a live system (WAL gives them a consistent snapshot), on a copy, or on
//! a backup.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

/// `rampart audit …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 0 when intact, 1 when broken (the first
    /// entry that does not fit is printed).
    Verify(AuditArgs),
    /// Write every entry as JSON lines, one per line, in chain order.
    Export {
        #[command(flatten)]
        args: AuditArgs,
        /// Write here instead of standard output (created 0600).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Where the data is.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The data directory `rampart serve` uses. Default: `/var/lib/rampart`
    /// as root, `./rampart-data` otherwise.
    #[arg(long, env = "RAMPART_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl AuditArgs {
    /// The database file, checked to exist: opening a missing file
    /// read-only would fail less clearly.
    fn database(&self, is_root: bool) -> anyhow::Result<PathBuf> {
        let default = if is_root { "/var/lib/rampart" } else { "rampart-data" };
        let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from(default));
        let db = core_api::database_path(&dir);
        anyhow::ensure!(db.is_file(), "no database at {}", db.display());
        Ok(db)
    }
}

/// The outcome of `verify`, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The chain is intact.
    Intact,
    /// The chain breaks.
    Broken,
}

/// Runs `rampart audit verify`, printing the result to `out`.
pub fn verify(args: &AuditArgs, is_root: bool, out: &mut dyn Write) -> anyhow::Result<Verdict> {
    let db = args.database(is_root)?;
    let result = core_api::verify_chain(&db).with_context(|| format!("verifying {}", db.display()))?;
    match result.first_bad_id {
        None => {
            writeln!(out, "audit chain intact: {} entries", result.entries)?;
            Ok(Verdict::Intact)
        }
        Some(id) => {
            writeln!(
                out,
                "audit chain BROKEN at entry {id} ({} entries); first_bad_id={id}",
                result.entries
            )?;
            Ok(Verdict::Broken)
        }
    }
}

/// Runs `rampart audit export`; answers how many entries were written.
pub fn export(args: &AuditArgs, output: Option<&Path>, is_root: bool, stdout: &mut dyn Write) -> anyhow::Result<u64> {
    let db = args.database(is_root)?;
    match output {
        None => {
            let mut out = std::io::BufWriter::new(stdout);
            let n = core_api::export_chain(&db, &mut out).with_context(|| format!("exporting {}", db.display()))?;
            out.flush()?;
            Ok(n)
        }
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            // The log names admins and client addresses: not for everyone.
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = core_api::export_chain(&db, &mut out).with_context(|| format!("exporting {}", db.display()))?;
            out.flush()?;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(action: &str) -> core_api::audit::AuditRecord {
        core_api::audit::AuditRecord {
            time: jiff::Timestamp::UNIX_EPOCH,
            actor: "system".into(),
            client_addr: None,
            request_id: None,
            action: action.into(),
            target: None,
            outcome: schemas::api::Outcome::Success,
            detail: None,
        }
    }

    #[tokio::test]
    async fn verify_and_export_read_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let args = AuditArgs {
            data_dir: Some(dir.path().to_owned()),
        };
        let err = verify(&args, false, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no database"), "{err}");

        let store = core_api::store::Store::open(core_api::database_path(dir.path()))
            .await
            .unwrap();
        for action in ["a", "b", "c"] {
            store.append_audit(record(action)).await.unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(verify(&args, false, &mut out).unwrap(), Verdict::Intact);
        assert!(String::from_utf8(out).unwrap().contains("3 entries"));

        let mut out = Vec::new();
        assert_eq!(export(&args, None, false, &mut out).unwrap(), 3);
        let text = String::from_utf8(out).unwrap();
        let actions: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].to_string())
            .collect();
        assert_eq!(actions, ["\"a\"", "\"b\"", "\"c\""]);

        let file = dir.path().join("out.jsonl");
        assert_eq!(export(&args, Some(&file), false, &mut Vec::new()).unwrap(), 3);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
