//! End-to-end tests: the real `rampart`, `rampart-core` and `rampart-edge`
//! binaries on loopback, driven over HTTPS as an operator or an attacker
//! would. Build the binaries first (`cargo build --bins`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod acme;
mod admins;
mod audit_chain;
mod bad_input;
mod confinement;
mod console;
mod edge;
mod flow;
mod privsep;
mod processes;
mod resource_input;
mod resources;
mod roles;
mod throttle;
mod tls;
mod tokens;
mod totp;
mod tunnel;
