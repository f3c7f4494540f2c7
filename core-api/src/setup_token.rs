//! The one-time first-admin setup token and its file, `DATA_DIR/setup-token`.
//!
//! While no admin exists and setup has not been done, a token must exist
//! both as a file the operator can read (mode 0600 from the moment it is
//! created) and as its SHA-256 in the database. A restart reuses the token if
//! the file and the database still agree, so a printed token stays valid;
//! otherwise a new one is issued. Once setup is done the file is removed.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::crypto::{digest_eq, random_token, sha256_hex};
use crate::store::Store;

/// The file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "setup-token";

/// Where the setup token file of `data_dir` is.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::SetupToken {
        path: path.to_owned(),
        source,
    }
}

/// Makes the file and the database agree with the setup state; answers
/// whether setup is pending (and so the file exists).
pub(crate) async fn prepare(store: &Store, path: &Path) -> Result<bool, Error> {
    let state = store.setup_state().await?;
    if state.is_done() {
        remove(path);
        return Ok(false);
    }
    match fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            let matches = state
                .token_hash
                .as_deref()
                .is_some_and(|stored| digest_eq(stored, &sha256_hex(token)));
            if matches {
                // Someone may have loosened it by hand; a token is a password.
                fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_error(path))?;
                tracing::info!(path = %path.display(), "setup pending: the setup token file is still valid");
                return Ok(true);
            }
            tracing::warn!(path = %path.display(), "setup token file does not match the database; issuing a new token");
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path)(e)),
    }
    let token = random_token();
    write_private(path, &token)?;
    store.issue_setup_token(sha256_hex(&token)).await?;
    tracing::info!(
        path = %path.display(),
        "setup pending: wrote a one-time setup token; use it with POST /api/v1/setup to create the first admin"
    );
    Ok(true)
}

/// Writes `token` to `path` through a temporary file created with mode 0600
/// (`create_new`, so never through a file someone else prepared), then
/// renames it into place: the token is never world-readable, not even
/// briefly, and never half-written.
fn write_private(path: &Path, token: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&tmp)(e)),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

/// Removes the file once setup is done; a failure is logged, not fatal (the
/// token in it no longer works).
pub(crate) fn remove(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "setup done: removed the setup token file"),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove the used setup token file"),
    }
}
