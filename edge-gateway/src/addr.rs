//! Socket addresses as text without `core::fmt`, which spends ~1 800
//! instructions on an IPv4 `ip:port` (padding checks for every octet); the
//! hop to the core and the access log write one per request.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};

/// `ip:port` as `SocketAddr`'s `Display` writes it.
#[derive(Clone, Copy, Debug)]
pub struct Addr(pub SocketAddr);

impl Addr {
    /// Appends the text to `out`.
    pub fn push_to(self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self.0 {
            SocketAddr::V4(v4) => out.extend_from_slice(V4Text::new(v4).as_str().as_bytes()),
            SocketAddr::V6(_) => {
                let _ = write!(out, "{}", self.0);
            }
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(v4) => f.write_str(V4Text::new(v4).as_str()),
            SocketAddr::V6(_) => fmt::Display::fmt(&self.0, f),
        }
    }
}

/// An IPv4 `ip:port`, at most `255.255.255.255:65535`.
#[derive(Debug)]
struct V4Text {
    bytes: [u8; 21],
    len: usize,
}

impl V4Text {
    fn new(addr: SocketAddrV4) -> Self {
        let mut text = Self { bytes: [0; 21], len: 0 };
        let mut numbers = itoa::Buffer::new();
        for (i, octet) in addr.ip().octets().into_iter().enumerate() {
            if i > 0 {
                text.push(b".");
            }
            text.push(numbers.format(octet).as_bytes());
        }
        text.push(b":");
        text.push(numbers.format(addr.port()).as_bytes());
        text
    }

    fn push(&mut self, part: &[u8]) {
        self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, dots and a colon were pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for text in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "198.18.0.9:443",
            "[2001:db8::1]:8443",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(Addr(addr).to_string(), text);
            assert_eq!(Addr(addr).to_string(), addr.to_string());
            let mut out = b"x=".to_vec();
            Addr(addr).push_to(&mut out);
            assert_eq!(out, format!("x={text}").into_bytes());
        }
    }
}
