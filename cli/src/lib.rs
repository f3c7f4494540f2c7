//! The `rampart` command.
//!
//! # Layout
//! - [`acme`]: `rampart acme renew`, which asks the running core.
//! - [`audit`]: `rampart audit verify|export`, offline on the database file.
//! - [`serve`]: `rampart serve`: the configuration, the data directory and
//!   the first-start banner.
//! - [`supervisor`]: starts the core and the edge as child processes,
//!   restarts a crashed one with backoff, stops both on SIGTERM/SIGINT.
//! - [`privsep`]: as root, the three users and who owns what in the data
//!   directory; [`launcher`] starts tunnels for the unprivileged core.

pub mod acme;
pub mod audit;
pub mod launcher;
pub mod privsep;
pub mod serve;
pub mod supervisor;
