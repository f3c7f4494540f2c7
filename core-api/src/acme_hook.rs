//! The DNS-01 hook: an operator's command, run as
//! `CMD set <domain> <txt-value>` before the CA checks and
//! `CMD clear <domain> <txt-value>` afterwards. The record to set is
//! `_acme-challenge.<domain>` (TXT).
//!
//! The core runs it, not the edge: the edge must never execute anything
//! (its sandbox will forbid it), while the core already starts processes.
//! The edge publishes the DNS-01 value through `/internal/acme/challenges`,
//! and that call returns once the hook did. The command comes from the
//! core's flags, never from the API: a setting an admin could change over
//! the API must not be a command line.

use std::process::Stdio;
use std::time::Duration;

/// How long the hook may take.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No `--acme-dns-hook` was configured.
    #[error("dns-01 needs --acme-dns-hook CMD (called as `CMD set|clear <domain> <txt-value>`)")]
    Missing,
    /// The command could not be started.
    #[error("starting the DNS hook {command:?}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command failed.
    #[error("the DNS hook `{action} {domain}` exited with {status}: {stderr}")]
    Failed {
        /// `set` or `clear`.
        action: &'static str,
        /// The domain.
        domain: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// The command took too long.
    #[error("the DNS hook `{action} {domain}` did not finish within {HOOK_TIMEOUT:?}")]
    Timeout {
        /// `set` or `clear`.
        action: &'static str,
        /// The domain.
        domain: String,
    },
}

/// Runs `command action domain value`. The command is split on whitespace
/// (no shell): the first word is the program, the rest its leading
/// arguments.
pub async fn run(command: Option<&str>, action: &'static str, domain: &str, value: &str) -> Result<(), HookError> {
    let command = command.ok_or(HookError::Missing)?;
    let mut words = command.split_whitespace();
    let program = words.next().ok_or(HookError::Missing)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(words)
        .arg(action)
        .arg(domain)
        .arg(value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| HookError::Spawn {
        command: command.to_owned(),
        source,
    })?;
    let output = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| HookError::Timeout {
            action,
            domain: domain.to_owned(),
        })?
        .map_err(|source| HookError::Spawn {
            command: command.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(HookError::Failed {
            action,
            domain: domain.to_owned(),
            status: output.status.to_string(),
            stderr: tail.trim().to_owned(),
        });
    }
    Ok(())
}
