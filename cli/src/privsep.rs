//! Privilege separation for `rampart serve` run as root: three system
//! users, one per process, and a data directory each of them can use only
//! its own part of.
//!
//! | path in the data directory | owner | mode |
//! |---|---|---|
//! | `.` | rampart-core | 0711: the edge may pass through to `edge/`, not list |
//! | `edge/` and below | rampart-edge | the edge's certificate, key, ACME state |
//! | `origin-secret` | root | 0600: only the supervisor reads it, and hands it over |
//! | everything else (database, host key, setup token) | rampart-core | as created |

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The three users.
pub const EDGE_USER: &str = "rampart-edge";
/// The core's user.
pub const CORE_USER: &str = "rampart-core";
/// The tunnels' user.
pub const TUNNEL_USER: &str = "rampart-tunnel";

/// A user's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Who runs what.
#[derive(Debug, Clone, Copy)]
pub struct Users {
    /// Runs `rampart-edge`.
    pub edge: Ids,
    /// Runs `rampart-core`.
    pub core: Ids,
    /// Runs each `rampart-tunnel` after it drops root.
    pub tunnel: Ids,
}

/// Why privilege separation cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum PrivsepError {
    /// `useradd` failed or is missing.
    #[error("cannot create the system user {user}: {why}")]
    CreateUser {
        /// The user.
        user: &'static str,
        /// Why.
        why: String,
    },
    /// A user exists with a privileged or shared id.
    #[error("the user {0} must be a distinct unprivileged user (uid and gid not 0, not shared with the others)")]
    NotDistinct(&'static str),
    /// The processes' users cannot reach a path.
    #[error(
        "{path} is not searchable by other users (mode {mode:04o}), so {user} cannot reach {target}; \
         choose a --data-dir or binary directory below searchable directories, or chmod o+x {path}"
    )]
    Unreachable {
        /// The directory that blocks.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Who is blocked.
        user: &'static str,
        /// What they need.
        target: PathBuf,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Looks a user up through NSS (`getent passwd`).
pub fn lookup(name: &str) -> Option<Ids> {
    let out = Command::new("getent").args(["passwd", name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_passwd_line(&String::from_utf8_lossy(&out.stdout), name)
}

fn parse_passwd_line(text: &str, name: &str) -> Option<Ids> {
    let line = text.lines().next()?;
    let mut fields = line.split(':');
    if fields.next()? != name {
        return None;
    }
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Ids { uid, gid })
}

/// Finds the three users, creating the missing ones (system users with
/// their own group, no home, no login shell).
pub fn ensure_users() -> Result<Users, PrivsepError> {
    let mut ids = Vec::new();
    for user in [EDGE_USER, CORE_USER, TUNNEL_USER] {
        let found = match lookup(user) {
            Some(found) => found,
            None => {
                tracing::info!(user, "creating system user");
                create(user)?;
                lookup(user).ok_or(PrivsepError::CreateUser {
                    user,
                    why: "not found after useradd".into(),
                })?
            }
        };
        if found.uid == 0 || found.gid == 0 || ids.iter().any(|(_, other): &(&str, Ids)| other.uid == found.uid) {
            return Err(PrivsepError::NotDistinct(user));
        }
        ids.push((user, found));
    }
    Ok(Users {
        edge: ids[0].1,
        core: ids[1].1,
        tunnel: ids[2].1,
    })
}

fn create(user: &'static str) -> Result<(), PrivsepError> {
    let shell = ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"]
        .into_iter()
        .find(|s| Path::new(s).exists())
        .unwrap_or("/bin/false");
    let out = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
        ])
        .args(["--shell", shell, user])
        .output()
        .map_err(|e| PrivsepError::CreateUser {
            user,
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(PrivsepError::CreateUser {
            user,
            why: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Checks that every directory above `target` lets other users through.
pub fn check_reachable(target: &Path, user: &'static str) -> Result<(), PrivsepError> {
    for dir in target.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta = fs::metadata(dir).map_err(io_err("inspecting", dir))?;
        if meta.mode() & 0o001 == 0 {
            return Err(PrivsepError::Unreachable {
                path: dir.to_path_buf(),
                mode: meta.mode() & 0o7777,
                user,
                target: target.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Gives the data directory's parts to their users (see the module docs).
/// Runs at every start, so an install that ran as root once, or a restored
/// backup, ends up right.
pub fn assign_data_dir(data_dir: &Path, edge_dir: &Path, users: &Users) -> Result<(), PrivsepError> {
    check_reachable(data_dir, CORE_USER)?;
    fs::create_dir_all(edge_dir).map_err(io_err("creating", edge_dir))?;
    fs::set_permissions(edge_dir, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", edge_dir))?;
    chown_tree(edge_dir, users.edge)?;
    let secret = data_dir.join("origin-secret");
    for entry in fs::read_dir(data_dir).map_err(io_err("listing", data_dir))? {
        let path = entry.map_err(io_err("listing", data_dir))?.path();
        if path == edge_dir || path == secret {
            continue;
        }
        chown_tree(&path, users.core)?;
    }
    std::os::unix::fs::lchown(data_dir, Some(users.core.uid), Some(users.core.gid))
        .map_err(io_err("chown", data_dir))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o711)).map_err(io_err("chmod", data_dir))?;
    Ok(())
}

/// Maps an I/O error to [`PrivsepError::Io`] naming what was done to `path`.
fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PrivsepError {
    let path = path.to_path_buf();
    move |source| PrivsepError::Io { what, path, source }
}

/// `chown -R` without following symbolic links.
fn chown_tree(path: &Path, to: Ids) -> Result<(), PrivsepError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("inspecting", path))?;
    if meta.uid() != to.uid || meta.gid() != to.gid {
        std::os::unix::fs::lchown(path, Some(to.uid), Some(to.gid)).map_err(io_err("chown", path))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("listing", path))? {
            chown_tree(&entry.map_err(io_err("listing", path))?.path(), to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwd_lines_give_ids_for_the_named_user_only() {
        let line = "rampart-core:x:998:997::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            parse_passwd_line(line, "rampart-core"),
            Some(Ids { uid: 998, gid: 997 })
        );
        assert_eq!(parse_passwd_line(line, "rampart-edge"), None);
        assert_eq!(
            parse_passwd_line("rampart-core:x:abc:1::/:/bin/false", "rampart-core"),
            None
        );
        assert_eq!(parse_passwd_line("", "rampart-core"), None);
    }

    #[test]
    fn a_private_ancestor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_reachable(&private.join("data"), CORE_USER).unwrap_err();
        assert!(err.to_string().contains("private"), "{err}");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o711)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        check_reachable(&private.join("data"), CORE_USER).unwrap();
    }
}
