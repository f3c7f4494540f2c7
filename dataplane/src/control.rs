//! Serving the core on the control socket ([`schemas::tunnel`]): one reply
//! per request, in order. The socket closing means the core is gone, and the
//! tunnel goes with it.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::SystemTime;

use schemas::tunnel::{Command, MAX_FRAME, Reply, Request, encode_frame, frame_len};

use crate::engine::Engine;

/// The tunnel's end of the control socket.
#[derive(Debug)]
pub struct Control {
    stream: UnixStream,
}

/// What a read produced.
#[derive(Debug)]
pub enum Incoming {
    /// A request.
    Request(Request),
    /// A frame that was not a request; answered with an error, then skipped.
    Malformed(String),
    /// The core closed its end.
    Closed,
}

impl Control {
    /// Wraps the inherited socket.
    pub fn new(stream: UnixStream) -> Control {
        Control { stream }
    }

    /// Reads the next frame.
    pub fn read(&mut self) -> io::Result<Incoming> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Incoming::Closed),
            Err(e) => return Err(e),
        }
        let Some(len) = frame_len(header) else {
            // Cannot find the next frame boundary: stop talking.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame over {MAX_FRAME} bytes"),
            ));
        };
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        Ok(match serde_json::from_slice::<Request>(&body) {
            Ok(req) => Incoming::Request(req),
            Err(e) => Incoming::Malformed(e.to_string()),
        })
    }

    /// Sends one reply.
    pub fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        let frame = encode_frame(reply).map_err(io::Error::other)?;
        self.stream.write_all(&frame)
    }
}

/// Serves requests until the core says shut down or goes away.
pub fn serve(engine: &Engine, control: &mut Control) -> io::Result<()> {
    loop {
        let req = match control.read()? {
            Incoming::Closed => {
                tracing::info!("control socket closed; exiting");
                return Ok(());
            }
            Incoming::Malformed(why) => {
                tracing::warn!(%why, "malformed control request");
                control.reply(&Reply::Error {
                    id: 0,
                    message: format!("malformed request: {why}"),
                })?;
                continue;
            }
            Incoming::Request(req) => req,
        };
        let id = req.id;
        let reply = match req.command {
            Command::Setup(_) => Reply::Error {
                id,
                message: "already set up".into(),
            },
            Command::UpsertPeers { peers } => {
                let count = peers.len();
                match engine.upsert(peers) {
                    Ok(()) => {
                        tracing::debug!(count, "peers upserted");
                        Reply::Done { id }
                    }
                    Err(e) => Reply::Error {
                        id,
                        message: e.to_string(),
                    },
                }
            }
            Command::RemovePeers { keys } => {
                let removed = engine.remove(&keys);
                tracing::debug!(removed, "peers removed");
                Reply::Done { id }
            }
            Command::Stats => {
                let (peers, totals) = engine.stats(SystemTime::now());
                // The control protocol has no field for these; the log
                // line is where tests and operators see offloads at work.
                let [segmented, segments_out, coalesced, segments_in, malformed] = crate::offload::COUNTERS.snapshot();
                tracing::info!(
                    segmented,
                    segments_out,
                    coalesced,
                    segments_in,
                    malformed,
                    "offload counters"
                );
                Reply::Stats { id, peers, totals }
            }
            Command::Shutdown => {
                control.reply(&Reply::Done { id })?;
                tracing::info!("shutdown requested");
                return Ok(());
            }
        };
        control.reply(&reply)?;
    }
}
