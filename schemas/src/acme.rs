//! ACME: the values, the public settings bodies, and (in [`internal`]) the
//! bodies of the loopback-only edge↔core ACME protocol.
//!
//! The public types appear in the route table (`/api/v1/settings`); the
//! internal ones never do, which is what keeps the edge from forwarding a
//! client's request to the core's `/internal/acme/` endpoints.

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::values::{Email, HostAddress, InvalidValue};

pub mod internal;

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The most names one certificate is requested for.
pub const MAX_DOMAINS: usize = 100;

/// A DNS name a certificate is requested for: lower-case letters, digits
/// and hyphens in dot-separated labels of 1..=63, at most 253 in all. No
/// wildcards (HTTP-01 and TLS-ALPN-01 cannot prove them) and no IP literals.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DomainName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        let value = value.to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if value.is_empty() || value.len() > 253 || !value.split('.').all(label_ok) {
            return Err(InvalidValue(Cow::Borrowed(
                "must be a DNS name: letters, digits and hyphens in dot-separated labels",
            )));
        }
        if value.parse::<std::net::IpAddr>().is_ok()
            || value
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(InvalidValue(Cow::Borrowed("must be a DNS name, not an IP address")));
        }
        Ok(Self(value))
    }
}

impl std::str::FromStr for DomainName {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Self::try_from(value.to_owned())
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> String {
        value.0
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for DomainName {
    fn schema_name() -> Cow<'static, str> {
        "DomainName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "hostname", "maxLength": 253})
    }
}

/// An ACME directory URL (`https://` only). `letsencrypt` and
/// `letsencrypt-staging` are accepted as shorthands and stored expanded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DirectoryUrl(String);

impl DirectoryUrl {
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The TCP port the CA listens on (443 unless the URL names one): the
    /// edge's sandbox must allow connecting to it.
    pub fn port(&self) -> u16 {
        let rest = self.0.strip_prefix("https://").unwrap_or(&self.0);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        host_port
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(443)
    }
}

impl Default for DirectoryUrl {
    fn default() -> Self {
        Self(LETSENCRYPT.to_owned())
    }
}

impl TryFrom<String> for DirectoryUrl {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        match value.as_str() {
            "letsencrypt" => return Ok(Self(LETSENCRYPT.to_owned())),
            "letsencrypt-staging" => return Ok(Self(LETSENCRYPT_STAGING.to_owned())),
            _ => {}
        }
        let rest = value.strip_prefix("https://").ok_or(InvalidValue(Cow::Borrowed(
            "must be an https:// URL, `letsencrypt` or `letsencrypt-staging`",
        )))?;
        let ok = value.len() <= 2048
            && !rest.is_empty()
            && !rest.starts_with('/')
            && rest.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(InvalidValue(Cow::Borrowed("must be an https:// URL without spaces")));
        }
        Ok(Self(value))
    }
}

impl std::str::FromStr for DirectoryUrl {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Self::try_from(value.to_owned())
    }
}

impl From<DirectoryUrl> for String {
    fn from(value: DirectoryUrl) -> String {
        value.0
    }
}

impl fmt::Debug for DirectoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl JsonSchema for DirectoryUrl {
    fn schema_name() -> Cow<'static, str> {
        "DirectoryUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "maxLength": 2048,
            "description": "An https:// ACME directory URL, or `letsencrypt` / `letsencrypt-staging`."})
    }
}

/// How the CA is to verify that this host controls the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ChallengeKind {
    /// A file under `/.well-known/acme-challenge/` on port 80.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A special certificate on port 443, for ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A TXT record, set through the `--acme-dns-hook` command.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl ChallengeKind {
    /// The name on the wire, in flags and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Dns01 => "dns-01",
        }
    }
}

impl std::str::FromStr for ChallengeKind {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Ok(match value {
            "http-01" => ChallengeKind::Http01,
            "tls-alpn-01" => ChallengeKind::TlsAlpn01,
            "dns-01" => ChallengeKind::Dns01,
            _ => return Err(InvalidValue(Cow::Borrowed("must be http-01, tls-alpn-01 or dns-01"))),
        })
    }
}

/// The certificate the edge presents, as far as ACME is concerned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateStatus {
    /// The names of the current ACME certificate (empty: none yet).
    pub names: Vec<String>,
    /// When it expires.
    pub not_after: Option<Timestamp>,
    /// Its issuer's distinguished name.
    pub issuer: Option<String>,
    /// Its serial number, hex.
    pub serial: Option<String>,
    /// When the edge last tried to get a certificate.
    pub last_attempt: Option<Timestamp>,
    /// Why the last attempt failed; absent after a success.
    pub last_error: Option<String>,
    /// Whether a renewal was asked for and not yet taken up by an edge.
    pub renew_requested: bool,
}

/// `GET /api/v1/settings`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where clients reach this host (`Endpoint` in profiles, key-link URLs).
    pub public_address: HostAddress,
    /// The names to get a certificate for; empty turns ACME off.
    pub acme_domains: Vec<DomainName>,
    /// The contact address given to the CA.
    pub acme_email: Option<Email>,
    /// The CA's directory URL.
    pub acme_directory: DirectoryUrl,
    /// The challenge type.
    pub acme_challenge: ChallengeKind,
    /// The certificate and the last attempt.
    pub certificate: CertificateStatus,
}

/// `PATCH /api/v1/settings`: the fields to change.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "settings_patch_ok"))]
pub struct SettingsPatch {
    /// A new public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<HostAddress>,
    /// New names (replaces the list; `[]` turns ACME off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_domains: Option<Vec<DomainName>>,
    /// A new contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<Email>,
    /// A new directory URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_directory: Option<DirectoryUrl>,
    /// A new challenge type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_challenge: Option<ChallengeKind>,
}

fn settings_patch_ok(patch: &SettingsPatch) -> Result<(), ValidationError> {
    let field = |code, message| {
        let mut err = ValidationError::new(code).with_message(Cow::Borrowed(message));
        err.add_param(Cow::Borrowed("field"), &"acme_domains");
        err
    };
    if patch.public_address.is_none()
        && patch.acme_domains.is_none()
        && patch.acme_email.is_none()
        && patch.acme_directory.is_none()
        && patch.acme_challenge.is_none()
    {
        return Err(field("empty_patch", "nothing to change: give at least one field"));
    }
    if patch.acme_domains.as_ref().is_some_and(|d| d.len() > MAX_DOMAINS) {
        return Err(field("too_many", "at most 100 names"));
    }
    Ok(())
}

/// `POST /api/v1/settings/acme/renew`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequested {
    /// Always true: an edge picks the request up within seconds.
    pub renew_requested: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn domain_names() {
        assert_eq!(
            "VPN.Example.com".parse::<DomainName>().unwrap().as_str(),
            "vpn.example.com"
        );
        assert!("localhost".parse::<DomainName>().is_ok());
        for bad in [
            "",
            "*.example.com",
            "a..b",
            "-a.example",
            "a-.example",
            "a_b.example",
            "192.0.2.1",
            "x.123",
            "a b",
        ] {
            assert!(bad.parse::<DomainName>().is_err(), "{bad:?}");
        }
        assert!(format!("{}.example", "a".repeat(64)).parse::<DomainName>().is_err());
    }

    #[test]
    fn directories_and_challenges() {
        assert_eq!("letsencrypt".parse::<DirectoryUrl>().unwrap().as_str(), LETSENCRYPT);
        assert_eq!(
            "letsencrypt-staging".parse::<DirectoryUrl>().unwrap().as_str(),
            LETSENCRYPT_STAGING
        );
        assert!("https://localhost:14000/dir".parse::<DirectoryUrl>().is_ok());
        for bad in [
            "http://ca.example/dir",
            "https://",
            "https:///x",
            "https://a b",
            "ftp://x",
        ] {
            assert!(bad.parse::<DirectoryUrl>().is_err(), "{bad:?}");
        }
        for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01, ChallengeKind::Dns01] {
            assert_eq!(kind.as_str().parse::<ChallengeKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("tls-sni-01".parse::<ChallengeKind>().is_err());
    }
}
