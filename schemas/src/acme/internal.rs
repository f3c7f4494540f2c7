//! Bodies of the loopback edge↔core ACME protocol (`/internal/acme/...` on
//! the core). These paths are not in the public route table, so the edge
//! never forwards a client's request to them; the core answers them only
//! with the origin proof. See `docs/design.md`, "ACME: the edge runs the
//! client, the core keeps the state".

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChallengeKind, DirectoryUrl, DomainName};

/// The path prefix of every internal ACME endpoint.
pub const PREFIX: &str = "/internal/acme/";

/// What an edge needs to do ACME.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The names; never empty here (empty means ACME is off: no config).
    pub domains: Vec<DomainName>,
    /// The contact address.
    pub email: Option<String>,
    /// The directory URL.
    pub directory: DirectoryUrl,
    /// The challenge type.
    pub challenge: ChallengeKind,
}

/// What identifies the stored certificate, cheap to poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertMeta {
    /// Serial number, hex.
    pub serial: String,
    /// The names it covers.
    pub names: Vec<String>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// The issuer's distinguished name.
    pub issuer: String,
}

/// `GET /internal/acme/state`: polled by every edge every few seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeState {
    /// The configuration, absent while ACME is off.
    pub config: Option<AcmeConfig>,
    /// An admin asked for a renewal that no edge has taken up yet.
    pub renew_requested: bool,
    /// The stored certificate, if any.
    pub certificate: Option<CertMeta>,
}

/// `GET`/`PUT /internal/acme/certificate`: the chain and its key. The core
/// stores the key sealed under the host key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCertificate {
    /// What identifies it.
    pub meta: CertMeta,
    /// The chain, PEM, leaf first.
    pub chain_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// `GET`/`PUT /internal/acme/account`: the ACME account (instant-acme's
/// credentials JSON, which includes its private key), sealed by the core.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRecord {
    /// The directory the account belongs to: a new directory needs a new
    /// account.
    pub directory: String,
    /// The credentials, JSON text.
    pub credentials: String,
}

/// `PUT`/`GET /internal/acme/challenges/{kind}/{key}`: a challenge answer.
/// `key` is the HTTP-01 token, or the domain for TLS-ALPN-01 and DNS-01.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeAnswer {
    /// HTTP-01: the key authorization; TLS-ALPN-01: the challenge
    /// certificate, PEM; DNS-01: the TXT value.
    pub value: String,
    /// TLS-ALPN-01: the challenge certificate's private key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
    /// For which challenge type.
    pub kind: ChallengeKind,
}

/// `POST /internal/acme/attempt`: how an issuance attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptReport {
    /// When it started.
    pub at: Timestamp,
    /// Why it failed; `None` on success.
    pub error: Option<String>,
}

/// Whether a challenge key is safe as a path segment and a database key:
/// base64url tokens and DNS names both fit.
pub fn valid_challenge_key(key: &str) -> bool {
    (1..=255).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `POST /internal/acme/lease` and `/internal/acme/lease/release`: the
/// right to order for a while, so two hosts do not order at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// Who asks: a random id per edge process.
    pub holder: String,
    /// For how long, in seconds (acquire only; at most an hour).
    #[serde(default)]
    pub seconds: u32,
}
