//! `core-api`: Rampart's control plane, the `rampart-core` process.
//!
//! The core listens on loopback only and answers only requests that carry
//! the edge's proof of origin. It owns the database, authenticates admins,
//! enforces each route's access rule from the `schemas` route table, and
//! writes every state change, refusals included, to a hash-chained audit log
//! in the same transaction as the change.
//!
//! # Layout
//! - [`config`]: the process's flags; [`shutdown`]: what ends it (signals,
//!   end-of-file on standard input). `main.rs` only wires these to [`run`].
//! - [`server`]: [`run`], a connection-bounded server on a given listener.
//! - `handlers`: the axum router ([`router`]) and one module per resource;
//!   `handlers::internal_acme` is the loopback edge↔core ACME protocol
//!   (`/internal/acme/...`, not in the public route table, origin proof
//!   only; see `docs/design.md`).
//! - `gate`: the middleware in front of every handler: origin proof, route
//!   lookup, session, CSRF, role, the request span, and the audit entry of
//!   every state change that a handler did not record itself.
//! - [`events`]: the change broadcast the gate publishes to and
//!   `GET /api/v1/events` streams to consoles.
//! - `auth`: sessions, cookies, CSRF and the sign-in throttle's policy;
//!   `context`: what the gate hands to handlers; `error`: the one mapping
//!   from errors to problem documents; `paging`: query parameters and cursors;
//!   `profile`: wg-quick profiles, their QR codes and the key link page.
//! - [`state`]: [`AppState`], opened from the data directory; `setup_token`:
//!   the first-admin token file.
//! - [`store`]: all SQL, behind plain async methods; [`audit`]: the hash
//!   chain and [`verify_chain`], which also works offline on a database file.
//! - [`totp`]: RFC 6238 codes, the replay-aware check, `otpauth://` URIs
//!   and QR codes.
//! - [`acme_hook`]: the DNS-01 hook command, run for the edge.
//! - [`tunnels`]: one `rampart-tunnel` per running server, supervised and
//!   kept in step with the database.
//! - [`sealed`]: secrets at rest, sealed under the host key;
//!   [`keys`]: WireGuard key pairs and preshared keys;
//!   [`crypto`]: tokens, digests, argon2id; [`secret`]: the origin secret;
//!   [`clock`]: "now", replaceable in tests.

pub mod acme_hook;
pub mod audit;
mod auth;
pub mod clock;
pub mod config;
mod context;
pub mod crypto;
mod error;
pub mod events;
mod gate;
mod handlers;
pub mod keys;
mod paging;
mod profile;
pub mod sandbox;
pub mod sealed;
pub mod secret;
pub mod server;
mod setup_token;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod totp;
pub mod tunnels;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use audit::{export_chain, verify_chain};
pub use clock::Clock;
pub use error::ApiError;
pub use handlers::router;
pub use secret::OriginSecret;
pub use server::run;
pub use setup_token::path_in as setup_token_path;
pub use state::{AppState, database_path};

/// Why the core could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core's directory could not be created or secured.
    #[error("cannot prepare the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The setup token file could not be read or written.
    #[error("cannot write the setup token file {path}")]
    SetupToken {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database")]
    Store(#[from] store::StoreError),
    /// The host key could not be read or created.
    #[error("host key")]
    HostKey(#[from] sealed::SealError),
    /// Hashing failed.
    #[error("password hashing")]
    Crypto(#[from] crypto::CryptoError),
    /// The listener is not on loopback.
    #[error("{0} is not a loopback address; the core only listens on loopback")]
    NotLoopback(SocketAddr),
    /// Serving failed.
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
}
