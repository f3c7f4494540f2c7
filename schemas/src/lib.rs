//! The public contract of Rampart, shared by the edge and the core.
//!
//! Nothing here does I/O. The edge uses this crate to decide what it forwards;
//! the core uses the same types to decode what it receives, so the two cannot
//! drift apart.
//!
//! # Layout
//! - [`values`]: newtypes that can only hold a valid value (names, emails,
//!   passwords, tokens) and the UUID ids.
//! - [`acme`]: ACME values and settings bodies; [`acme::internal`] the
//!   bodies of the loopback edge↔core ACME protocol (never in the route table).
//! - [`api`]: request and response bodies. Every request type rejects unknown
//!   fields and carries its `validator` rules.
//! - [`problem`]: RFC 9457 problem documents, the only error shape on the wire.
//! - [`codec`]: type-erased "parse, validate, re-encode" functions that let a
//!   static route table name a Rust type.
//! - [`routes`]: the route table and the matcher the edge runs on every request.
//! - [`query`]: the typed query parameters a route may accept.
//! - [`openapi`]: the OpenAPI 3.1 document generated from the route table.
//! - [`wire`]: the header names the edge and the core agree on.
//! - [`tunnel`]: the control protocol between the core and a tunnel process
//!   (not HTTP; never in the route table).

pub mod acme;
pub mod api;
pub mod codec;
pub mod launcher;
pub mod openapi;
pub mod problem;
pub mod query;
pub mod routes;
pub mod tunnel;
pub mod values;
pub mod wire;
