//! The launcher protocol: how the core, which holds no capability, gets a
//! tunnel started by `rampart serve`, which runs as root.
//!
//! When `rampart serve` separates privileges, the core's standard input is a
//! Unix stream socket to the supervisor. The first line on it is the origin
//! secret; after that the core sends [`LaunchRequest`]s and the supervisor
//! answers each with one [`LaunchReply`], one at a time. Every message is
//! one line of JSON. A [`LaunchRequest::Start`] carries exactly one file
//! descriptor as `SCM_RIGHTS`: the tunnel's end of the control socketpair
//! ([`crate::tunnel`]), which becomes the tunnel's standard input.
//!
//! The supervisor decides everything else — which binary, which user, which
//! network namespace — so a compromised core can ask for a tunnel and
//! nothing more. End-of-file on the socket means the other side is gone.

use serde::{Deserialize, Serialize};

/// The longest line either side accepts.
pub const MAX_LINE: usize = 4096;

/// A request from the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LaunchRequest {
    /// Start a tunnel whose control socket is the descriptor sent along.
    Start {},
    /// Kill a tunnel this supervisor started (one that ignored `shutdown`).
    Kill {
        /// Its process id, as [`LaunchReply::Started`] gave it.
        pid: u32,
    },
}

/// The supervisor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum LaunchReply {
    /// The tunnel process runs.
    Started {
        /// Its process id.
        pid: u32,
    },
    /// Done (a kill).
    Done,
    /// Refused or failed; the reason, for the core's log and the API.
    Error {
        /// Why.
        message: String,
    },
}

/// Encodes one message as its line.
pub fn encode_line<T: Serialize>(message: &T) -> Vec<u8> {
    // Both types are plain enums of integers and strings: serialising them
    // cannot fail.
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_round_trip_and_unknown_fields_are_refused() {
        let line = encode_line(&LaunchRequest::Kill { pid: 7 });
        assert_eq!(line, b"{\"op\":\"kill\",\"pid\":7}\n");
        let back: LaunchRequest = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, LaunchRequest::Kill { pid: 7 });
        assert!(serde_json::from_str::<LaunchRequest>(r#"{"op":"start","program":"/bin/sh"}"#).is_err());
        let reply = encode_line(&LaunchReply::Started { pid: 9 });
        assert_eq!(
            serde_json::from_slice::<LaunchReply>(&reply).unwrap(),
            LaunchReply::Started { pid: 9 }
        );
    }
}
