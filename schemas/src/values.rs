//! Newtypes for validated values: once built, they hold a valid value, so
//! code past the edge never checks them again.
//!
//! Each string newtype deserializes through `TryFrom<String>`, so a bad value
//! fails inside serde and the error names the field it came from.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod net;
pub use net::{Cidr, Ipv4Net, Ipv6Net, WgKey};

/// Why a value was refused; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub Cow<'static, str>);

fn invalid(msg: impl Into<Cow<'static, str>>) -> InvalidValue {
    InvalidValue(msg.into())
}

/// Declares a string newtype with a checker, serde through `TryFrom<String>`
/// and a JSON schema with the given constraints.
macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, check = $check:path, schema = $schema:tt) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        // By hand rather than `into = "String"`, which would clone the
        // string for every value written (the edge writes two per request).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                $check(&value)?;
                Ok(Self(value))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(value: &str) -> Result<Self, InvalidValue> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

fn no_control_chars(value: &str) -> Result<(), InvalidValue> {
    // By bytes for ASCII, where `char::is_control` is `is_ascii_control`,
    // without decoding; by characters otherwise. A fold has no early exit,
    // so the compiler tests many bytes at a time.
    let control = if value.is_ascii() {
        value.bytes().fold(false, |any, b| any | b.is_ascii_control())
    } else {
        value.chars().any(char::is_control)
    };
    if control {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

fn check_name(value: &str) -> Result<(), InvalidValue> {
    let len = value.chars().count();
    if !(1..=64).contains(&len) {
        return Err(invalid("must be 1 to 64 characters"));
    }
    if value.trim() != value {
        return Err(invalid("must not start or end with white space"));
    }
    no_control_chars(value)
}

fn check_username(value: &str) -> Result<(), InvalidValue> {
    if !(3..=32).contains(&value.len()) {
        return Err(invalid("must be 3 to 32 characters"));
    }
    let ok_first = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let ok_rest = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok_first || !ok_rest {
        return Err(invalid("must start with a-z and use only a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), InvalidValue> {
    use validator::ValidateEmail;
    // The plain-ASCII check answers almost every address without a regex;
    // only what it refuses (international domains, address literals, and
    // the invalid) goes on to `validator`, which has the final word.
    if value.len() > 254 || !(plain_ascii_email(value) || value.validate_email()) {
        return Err(invalid("must be an email address"));
    }
    Ok(())
}

/// Whether `value` is `user@domain` in plain ASCII as `validator` accepts
/// it: a user part of 1–64 characters from the HTML5 set and a domain of
/// dot-separated labels of 1–63 letters, digits and inner hyphens. Accepts
/// a subset of what `validator` accepts (a property test holds it to that),
/// and is about twenty times faster, which matters on the edge's hot path.
fn plain_ascii_email(value: &str) -> bool {
    /// The HTML5 set for the user part, as a table: one load per byte.
    const USER: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = (b as u8).is_ascii_alphanumeric();
            b += 1;
        }
        let extra = b".!#$%&'*+/=?^_`{|}~-";
        let mut i = 0;
        while i < extra.len() {
            table[extra[i] as usize] = true;
            i += 1;
        }
        table
    };
    let Some((user, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if !(1..=64).contains(&user.len()) || !user.bytes().all(|b| USER[usize::from(b)]) || domain.len() > 255 {
        return false;
    }
    // Labels of 1-63 letters, digits and hyphens, not starting or ending
    // with a hyphen, in one pass.
    let mut label_len = 0usize;
    let mut prev = b'.';
    for b in domain.bytes() {
        if b == b'.' {
            if label_len == 0 || prev == b'-' {
                return false;
            }
            label_len = 0;
        } else if b.is_ascii_alphanumeric() || (b == b'-' && label_len > 0) {
            label_len += 1;
            if label_len > 63 {
                return false;
            }
        } else {
            return false;
        }
        prev = b;
    }
    label_len > 0 && prev != b'-'
}

fn check_password(value: &str) -> Result<(), InvalidValue> {
    let len = value.chars().count();
    if !(12..=1024).contains(&len) {
        return Err(invalid("must be 12 to 1024 characters"));
    }
    no_control_chars(value)
}

fn check_login_password(value: &str) -> Result<(), InvalidValue> {
    if value.is_empty() || value.len() > 4096 {
        return Err(invalid("must be 1 to 4096 bytes"));
    }
    Ok(())
}

fn check_token(value: &str) -> Result<(), InvalidValue> {
    // 256-bit tokens, base64url without padding.
    if value.len() != 43
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid("must be a 43-character token"));
    }
    Ok(())
}

/// The prefix of every API token: it makes a leaked token recognisable to
/// secret scanners and to people, and keeps it apart from session tokens.
pub const API_TOKEN_PREFIX: &str = "rpt_";

fn check_api_token(value: &str) -> Result<(), InvalidValue> {
    match value.strip_prefix(API_TOKEN_PREFIX) {
        Some(rest) if check_token(rest).is_ok() => Ok(()),
        _ => Err(invalid("must be `rpt_` and 43 base64url characters")),
    }
}

fn check_host_address(value: &str) -> Result<(), InvalidValue> {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let labels_ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok {
        Ok(())
    } else {
        Err(invalid("must be a DNS name or an IP address"))
    }
}

fn check_totp(value: &str) -> Result<(), InvalidValue> {
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("must be 6 digits"));
    }
    Ok(())
}

string_newtype!(
    /// A display name: 1 to 64 characters, no control characters, no
    /// leading or trailing white space.
    Name, check = check_name,
    schema = {"type": "string", "minLength": 1, "maxLength": 64}
);
string_newtype!(
    /// An admin's login name: 3 to 32 of `a-z 0-9 . _ -`, starting with a letter.
    Username, check = check_username,
    schema = {"type": "string", "minLength": 3, "maxLength": 32, "pattern": "^[a-z][a-z0-9._-]{2,31}$"}
);
string_newtype!(
    /// An email address.
    Email, check = check_email,
    schema = {"type": "string", "format": "email", "maxLength": 254}
);
string_newtype!(
    /// A one-time or bearer token: 256 bits as 43 base64url characters.
    Token, check = check_token,
    schema = {"type": "string", "minLength": 43, "maxLength": 43, "pattern": "^[A-Za-z0-9_-]{43}$"}
);
string_newtype!(
    /// An API token as shown once at creation: `rpt_` + 256 bits as 43
    /// base64url characters.
    ApiToken, check = check_api_token,
    schema = {"type": "string", "minLength": 47, "maxLength": 47, "pattern": "^rpt_[A-Za-z0-9_-]{43}$"}
);
string_newtype!(
    /// Where clients reach this host: a DNS name or an IP address (IPv6
    /// without brackets). Goes into profiles as `Endpoint = <address>:<port>`.
    HostAddress, check = check_host_address,
    schema = {"type": "string", "minLength": 1, "maxLength": 253}
);
string_newtype!(
    /// A six-digit TOTP code.
    TotpCode, check = check_totp,
    schema = {"type": "string", "pattern": "^[0-9]{6}$"}
);

/// A new password: 12 to 1024 characters. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Password(String);

/// A password offered at login: any non-empty string, so that the policy for
/// new passwords is not revealed and old passwords keep working. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LoginPassword(String);

macro_rules! secret_string {
    ($name:ident, $check:path, $schema:tt) => {
        impl $name {
            /// The secret itself; call only where it is used.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                $check(&value)?;
                Ok(Self(value))
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}
secret_string!(Password, check_password, {"type": "string", "minLength": 12, "maxLength": 1024, "writeOnly": true});
secret_string!(LoginPassword, check_login_password, {"type": "string", "minLength": 1, "maxLength": 4096, "writeOnly": true});

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

macro_rules! debug_as_str {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
debug_as_str!(Name, Username, Email, TotpCode, HostAddress);

/// Parses a UUID only in its canonical hyphenated form, so that one resource
/// has exactly one URL.
pub fn parse_canonical_uuid(value: &str) -> Option<Uuid> {
    if value.len() != 36 {
        return None;
    }
    Uuid::try_parse(value).ok()
}

/// Declares a UUID id newtype.
macro_rules! id_newtype {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        #[schemars(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(value: &str) -> Result<Self, InvalidValue> {
                parse_canonical_uuid(value).map(Self).ok_or_else(|| invalid("must be a UUID"))
            }
        }
    )*};
}

id_newtype! {
    /// An administrator.
    AdminId;
    /// An organization.
    OrgId;
    /// A user of an organization (someone who connects to the VPN).
    UserId;
    /// A user's device: one WireGuard key.
    DeviceId;
    /// A VPN server: one WireGuard interface and its address pool.
    ServerId;
    /// An API token.
    TokenId;
}

/// What an administrator may do. Ordered from most to least privileged only
/// for display; checks use [`Role::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Users, devices and servers; not admins, tokens or settings.
    Operator,
    /// Read-only, including the audit log.
    Auditor,
}

impl Role {
    /// The role's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }
}

impl Role {
    /// Whether a holder of `self` may hand out `other` (an API token's
    /// role): an admin any role, everyone else only their own.
    pub fn covers(self, other: Role) -> bool {
        self == Role::Admin || self == other
    }

    /// Every role, for tables and tests that go through all of them.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Auditor];
}

impl std::str::FromStr for Role {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        match value {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            _ => Err(invalid("must be admin, operator or auditor")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ordinary_addresses_take_the_fast_path() {
        for good in [
            "a@b",
            "first.last+tag@mail.example.com",
            "x_y-z@a-b.c0",
            "o'brien@example.org",
        ] {
            assert!(plain_ascii_email(good), "{good}");
        }
        // Labels of 63 in domains longer than 63.
        let (d63, e63, e64) = ("d".repeat(63), "e".repeat(63), "e".repeat(64));
        assert!(plain_ascii_email(&format!("u@{d63}.{e63}.com")));
        assert!(!plain_ascii_email(&format!("u@{d63}.{e64}.com")));
        for other in [
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@b.-com",
            "a@b.com-",
            "a@b.com.",
            "a@.b.com",
            "a@-",
            "a@.",
            "@b.com",
            "a@",
            "a b@c.com",
            "a@[198.18.0.1]",
            "ü@b.com",
        ] {
            assert!(!plain_ascii_email(other), "{other}");
        }
        // The fallback still takes what the fast path leaves to it.
        assert!(check_email("user@[198.18.0.1]").is_ok());
        assert!(check_email("user@bücher.example").is_ok());
        assert!(check_email(&format!("{}@b.com", "u".repeat(65))).is_err());
        assert!(check_email(&format!("u@{}.com", "d".repeat(64))).is_err());
    }

    proptest::proptest! {
        // The fast path may only accept what `validator` accepts.
        #[test]
        fn fast_email_path_accepts_only_what_validator_does(value in "[a-zA-Z0-9.@_+'!-]{0,12}(@[a-z0-9.-]{0,70})?") {
            use validator::ValidateEmail;
            if plain_ascii_email(&value) {
                proptest::prop_assert!(value.validate_email(), "{}", value);
            }
        }

        #[test]
        fn fast_email_path_accepts_only_what_validator_does_on_any_ascii(value in "[ -~]{0,24}@[ -~]{0,24}") {
            use validator::ValidateEmail;
            if plain_ascii_email(&value) {
                proptest::prop_assert!(value.validate_email(), "{}", value);
            }
        }

        #[test]
        fn fast_email_path_agrees_on_ascii(user in "[a-z0-9.+_-]{1,66}", labels in proptest::collection::vec("[a-z0-9-]{0,65}", 1..4)) {
            use validator::ValidateEmail;
            let value = format!("{user}@{}", labels.join("."));
            proptest::prop_assert_eq!(plain_ascii_email(&value), value.validate_email(), "{}", value);
        }
    }

    #[test]
    fn names_refuse_edges_and_controls() {
        assert!(Name::try_from("Acme".to_owned()).is_ok());
        assert!(Name::try_from(String::new()).is_err());
        assert!(Name::try_from(" Acme".to_owned()).is_err());
        assert!(Name::try_from("a\u{0}b".to_owned()).is_err());
        assert!(Name::try_from("x".repeat(65)).is_err());
        assert!(Name::try_from("é".repeat(64)).is_ok());
    }

    #[test]
    fn usernames_are_restricted() {
        assert!(Username::try_from("alice".to_owned()).is_ok());
        assert!(Username::try_from("Alice".to_owned()).is_err());
        assert!(Username::try_from("1abc".to_owned()).is_err());
        assert!(Username::try_from("ab".to_owned()).is_err());
    }

    #[test]
    fn api_tokens_have_a_prefix() {
        let body = "A".repeat(43);
        assert!(ApiToken::try_from(format!("rpt_{body}")).is_ok());
        assert!(ApiToken::try_from(body.clone()).is_err());
        assert!(ApiToken::try_from(format!("rpx_{body}")).is_err());
        assert!(ApiToken::try_from(format!("rpt_{body}=")).is_err());
        let t = ApiToken::try_from(format!("rpt_{body}")).unwrap();
        assert!(!format!("{t:?}").contains("AAAA"));
    }

    #[test]
    fn roles_cover_themselves_and_admin_covers_all() {
        assert!(Role::Admin.covers(Role::Operator));
        assert!(Role::Operator.covers(Role::Operator));
        assert!(!Role::Operator.covers(Role::Admin));
        assert!(!Role::Auditor.covers(Role::Operator));
    }

    #[test]
    fn passwords_never_print() {
        let p = Password::try_from("correct horse battery".to_owned()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn uuids_only_canonical() {
        let id = Uuid::now_v7();
        assert_eq!(parse_canonical_uuid(&id.to_string()), Some(id));
        assert_eq!(parse_canonical_uuid(&id.simple().to_string()), None);
        assert_eq!(parse_canonical_uuid(&format!("{{{id}}}")), None);
        assert_eq!(parse_canonical_uuid("not-a-uuid-at-all-not-a-uuid-at-all!"), None);
    }
}
