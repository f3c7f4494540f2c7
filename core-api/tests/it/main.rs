//! In-process tests of the core: its router driven the way the edge drives
//! it, a real listener for `run`, and the binary for its exit statuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "tests: a failure should stop the test loudly"
)]

mod acme;
mod audit;
mod auth;
mod control;
mod orgs;
mod process;
mod proof;
mod resources;
mod routes;
mod setup;
mod support;
