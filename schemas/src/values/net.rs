//! Network values: WireGuard keys and IP networks.
//!
//! Networks are stored in their canonical text (`198.18.0.0/16`,
//! `fd00::/64`) and refuse host bits: `198.18.0.1/24` is almost always a
//! typo for a gateway address, and accepting it would make the pool's
//! bounds ambiguous.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::{InvalidValue, invalid};

/// A WireGuard (Curve25519) public key: 32 bytes as 44 characters of
/// standard base64 with its one `=` of padding, as `wg` prints it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WgKey(String);

impl WgKey {
    /// The key as `wg` prints it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // The constructor checked that this decodes to exactly 32 bytes.
        if let Ok(bytes) = STANDARD.decode(&self.0)
            && let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            out = arr;
        }
        out
    }

    /// The key for these bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(STANDARD.encode(bytes))
    }
}

impl TryFrom<String> for WgKey {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        // The standard engine refuses non-zero trailing bits, so each key has
        // exactly one spelling and uniqueness on the text is uniqueness on
        // the key.
        let ok =
            value.len() == 44 && value.ends_with('=') && STANDARD.decode(&value).is_ok_and(|bytes| bytes.len() == 32);
        if !ok {
            return Err(invalid("must be a WireGuard key: 32 bytes as 44 characters of base64"));
        }
        Ok(Self(value))
    }
}

impl From<WgKey> for String {
    fn from(value: WgKey) -> String {
        value.0
    }
}

impl fmt::Debug for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgKey({})", self.0)
    }
}

impl fmt::Display for WgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for WgKey {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Self::try_from(value.to_owned())
    }
}

impl JsonSchema for WgKey {
    fn schema_name() -> Cow<'static, str> {
        "WgKey".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "minLength": 44, "maxLength": 44, "pattern": "^[A-Za-z0-9+/]{43}=$"})
    }
}

/// Splits `a/p` and parses the prefix: decimal, no sign, no leading zero.
fn split_prefix(value: &str, max: u8) -> Result<(&str, u8), InvalidValue> {
    let (addr, prefix) = value
        .split_once('/')
        .ok_or_else(|| invalid("must be a network in CIDR notation, e.g. 10.8.0.0/24"))?;
    let canonical =
        !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) && (prefix == "0" || !prefix.starts_with('0'));
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| canonical && *p <= max)
        .ok_or_else(|| invalid("has a prefix length out of range"))?;
    Ok((addr, prefix))
}

macro_rules! net_newtype {
    ($(#[$doc:meta])* $name:ident, $addr:ty, $bits:expr, $int:ty, $example:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name {
            addr: $addr,
            prefix: u8,
        }

        impl $name {
            /// The network address.
            pub fn addr(&self) -> $addr {
                self.addr
            }
            /// The prefix length.
            pub fn prefix(&self) -> u8 {
                self.prefix
            }
            /// The network address as an integer.
            pub fn base(&self) -> $int {
                <$int>::from(self.addr)
            }
            /// How many addresses the network spans (saturating for /0).
            pub fn size(&self) -> $int {
                let host_bits = u32::from($bits - self.prefix);
                <$int>::checked_shl(1, host_bits).unwrap_or(<$int>::MAX)
            }
            /// Builds a network; host bits must be zero.
            pub fn new(addr: $addr, prefix: u8) -> Result<Self, InvalidValue> {
                if prefix > $bits {
                    return Err(invalid("has a prefix length out of range"));
                }
                let host_bits = u32::from($bits - prefix);
                let mask = <$int>::checked_shl(<$int>::MAX, host_bits).unwrap_or(0);
                if <$int>::from(addr) & !mask != 0 {
                    return Err(invalid(concat!(
                        "has host bits set: give the network address, e.g. ",
                        $example
                    )));
                }
                Ok(Self { addr, prefix })
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, InvalidValue> {
                let (addr, prefix) = split_prefix(&value, $bits)?;
                let addr: $addr = addr
                    .parse()
                    .map_err(|_| invalid(concat!("must be a network in CIDR notation, e.g. ", $example)))?;
                Self::new(addr, prefix)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.prefix)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(value: &str) -> Result<Self, InvalidValue> {
                Self::try_from(value.to_owned())
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "maxLength": 43, "description": concat!("A network in CIDR notation without host bits, e.g. ", $example)})
            }
        }
    };
}

net_newtype!(
    /// An IPv4 network, e.g. `10.8.0.0/24`.
    Ipv4Net, Ipv4Addr, 32, u32, "10.8.0.0/24"
);
net_newtype!(
    /// An IPv6 network, e.g. `fd00:8::/64`.
    Ipv6Net, Ipv6Addr, 128, u128, "fd00:8::/64"
);

/// An IPv4 or IPv6 network, e.g. a route pushed to clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Cidr {
    /// IPv4.
    V4(Ipv4Net),
    /// IPv6.
    V6(Ipv6Net),
}

impl TryFrom<String> for Cidr {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        let (addr, _) = value
            .split_once('/')
            .ok_or_else(|| invalid("must be a network in CIDR notation, e.g. 10.8.0.0/24"))?;
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Ipv4Net::try_from(value).map(Cidr::V4),
            Ok(IpAddr::V6(_)) => Ipv6Net::try_from(value).map(Cidr::V6),
            Err(_) => Err(invalid("must be a network in CIDR notation, e.g. 10.8.0.0/24")),
        }
    }
}

impl From<Cidr> for String {
    fn from(value: Cidr) -> String {
        value.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4(n) => fmt::Display::fmt(n, f),
            Cidr::V6(n) => fmt::Display::fmt(n, f),
        }
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

impl std::str::FromStr for Cidr {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        Self::try_from(value.to_owned())
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "maxLength": 43, "description": "An IPv4 or IPv6 network in CIDR notation without host bits."})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wg_keys_are_strict() {
        let good = STANDARD.encode([7u8; 32]);
        assert_eq!(WgKey::try_from(good.clone()).unwrap().to_bytes(), [7u8; 32]);
        assert!(WgKey::try_from(good.trim_end_matches('=').to_owned()).is_err());
        assert!(WgKey::try_from(STANDARD.encode([7u8; 31])).is_err());
        assert!(WgKey::try_from(STANDARD.encode([7u8; 33])).is_err());
        assert!(WgKey::try_from(good.replace('H', "-")).is_err());
        // Non-zero trailing bits: another spelling of a key, refused.
        let mut odd = good;
        odd.replace_range(42..43, "x");
        assert!(WgKey::try_from(odd).is_err());
    }

    #[test]
    fn networks_refuse_host_bits_and_odd_prefixes() {
        assert_eq!(Ipv4Net::try_from("198.18.0.0/16".to_owned()).unwrap().size(), 65536);
        assert!(Ipv4Net::try_from("198.18.0.1/24".to_owned()).is_err());
        assert!(Ipv4Net::try_from("198.18.0.0/33".to_owned()).is_err());
        assert!(Ipv4Net::try_from("198.18.0.0/016".to_owned()).is_err());
        assert!(Ipv4Net::try_from("198.18.0.0/+16".to_owned()).is_err());
        assert!(Ipv4Net::try_from("198.18.0.0".to_owned()).is_err());
        assert!(Ipv4Net::try_from("fd00::/64".to_owned()).is_err());
        let v6 = Ipv6Net::try_from("FD00:0::/64".to_owned()).unwrap();
        assert_eq!(v6.to_string(), "fd00::/64");
        assert!(Ipv6Net::try_from("fd00::1/64".to_owned()).is_err());
        assert!(matches!(Cidr::try_from("0.0.0.0/0".to_owned()).unwrap(), Cidr::V4(_)));
        assert!(matches!(Cidr::try_from("::/0".to_owned()).unwrap(), Cidr::V6(_)));
        assert!(Cidr::try_from("10.0.0.1/8".to_owned()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_key_round_trips(bytes: [u8; 32]) {
            let key = WgKey::from_bytes(&bytes);
            let parsed = WgKey::try_from(key.as_str().to_owned()).unwrap();
            proptest::prop_assert_eq!(parsed.to_bytes(), bytes);
        }

        #[test]
        fn networks_round_trip_and_refuse_host_bits(addr: u32, prefix in 0u8..=32, v6: u128, prefix6 in 0u8..=128) {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            let net = Ipv4Net::new(Ipv4Addr::from(addr & mask), prefix).unwrap();
            proptest::prop_assert_eq!(net.to_string().parse::<Ipv4Net>().unwrap(), net);
            proptest::prop_assert_eq!(Ipv4Net::new(Ipv4Addr::from(addr), prefix).is_ok(), addr & !mask == 0);
            let mask6 = u128::MAX.checked_shl(u32::from(128 - prefix6)).unwrap_or(0);
            let net6 = Ipv6Net::new(Ipv6Addr::from(v6 & mask6), prefix6).unwrap();
            proptest::prop_assert_eq!(net6.to_string().parse::<Ipv6Net>().unwrap(), net6);
            proptest::prop_assert_eq!(Ipv6Net::new(Ipv6Addr::from(v6), prefix6).is_ok(), v6 & !mask6 == 0);
        }
    }
}
