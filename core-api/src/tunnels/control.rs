//! The core's end of one tunnel's control socket: framed requests out, one
//! reply in per request, checked against the request's id.
//!
//! One request is in flight at a time (the supervisor is sequential), so a
//! reply that does not carry the id just sent means the stream is out of
//! step: that is an error, and the supervisor restarts the tunnel rather
//! than guess.

use std::time::Duration;

use schemas::tunnel::{Command, MAX_FRAME, Reply, Request, encode_frame, frame_len};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// Reading or writing the socket failed.
    #[error("control socket")]
    Io(#[from] std::io::Error),
    /// The tunnel closed the socket (it exited).
    #[error("the tunnel closed the control socket")]
    Closed,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A frame header announced more than [`MAX_FRAME`] bytes.
    #[error("the tunnel announced a frame over {MAX_FRAME} bytes")]
    TooLarge,
    /// A frame was not a reply.
    #[error("malformed reply")]
    Malformed(#[source] serde_json::Error),
    /// A request could not be encoded.
    #[error("cannot encode the request")]
    Encode(#[source] serde_json::Error),
    /// The reply answered another request.
    #[error("reply for request {got}, expected {expected}")]
    OutOfStep {
        /// The id sent.
        expected: u64,
        /// The id answered.
        got: u64,
    },
    /// The tunnel refused the request.
    #[error("the tunnel refused: {0}")]
    Refused(String),
}

/// The id a reply carries.
fn reply_id(reply: &Reply) -> u64 {
    match reply {
        Reply::Ready { id, .. } | Reply::Done { id } | Reply::Stats { id, .. } | Reply::Error { id, .. } => *id,
    }
}

/// One control connection.
#[derive(Debug)]
pub(crate) struct Control<S> {
    stream: S,
    next_id: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Control<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self { stream, next_id: 1 }
    }

    /// The socket, to watch it for end-of-file between requests.
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    /// Sends `command` and waits at most `timeout` for its reply. An
    /// [`Reply::Error`] becomes [`ControlError::Refused`].
    pub(crate) async fn call(&mut self, command: Command, timeout: Duration) -> Result<Reply, ControlError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&Request { id, command }).map_err(ControlError::Encode)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await?;
            read_reply(&mut self.stream).await
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ControlError::Timeout(timeout))??;
        let got = reply_id(&reply);
        if got != id {
            return Err(ControlError::OutOfStep { expected: id, got });
        }
        match reply {
            Reply::Error { message, .. } => Err(ControlError::Refused(message)),
            other => Ok(other),
        }
    }
}

async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Reply, ControlError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ControlError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len(header).ok_or(ControlError::TooLarge)?;
    let mut body = vec![0u8; len];
    match stream.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ControlError::Closed),
        Err(e) => return Err(e.into()),
    }
    serde_json::from_slice(&body).map_err(ControlError::Malformed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use schemas::tunnel::Totals;
    use tokio::io::DuplexStream;

    /// Reads one request from the fake tunnel's end.
    async fn read_request(s: &mut DuplexStream) -> Request {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).await.unwrap();
        let mut body = vec![0u8; frame_len(header).unwrap()];
        s.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    async fn write_reply(s: &mut DuplexStream, reply: &Reply) {
        s.write_all(&encode_frame(reply).unwrap()).await.unwrap();
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn requests_get_increasing_ids_and_their_replies() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let fake = tokio::spawn(async move {
            let first = read_request(&mut theirs).await;
            assert_eq!(first.command, Command::Stats);
            write_reply(
                &mut theirs,
                &Reply::Stats {
                    id: first.id,
                    peers: Vec::new(),
                    totals: Totals::default(),
                },
            )
            .await;
            let second = read_request(&mut theirs).await;
            assert_eq!(second.id, first.id + 1);
            write_reply(
                &mut theirs,
                &Reply::Error {
                    id: second.id,
                    message: "nope".into(),
                },
            )
            .await;
        });
        let mut control = Control::new(ours);
        assert!(matches!(control.call(Command::Stats, T).await, Ok(Reply::Stats { .. })));
        match control.call(Command::Shutdown, T).await {
            Err(ControlError::Refused(m)) => assert_eq!(m, "nope"),
            other => panic!("{other:?}"),
        }
        fake.await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_id_a_closed_socket_a_huge_frame_and_silence_are_errors() {
        // Wrong id.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut control = Control::new(ours);
        let fake = tokio::spawn(async move {
            let r = read_request(&mut theirs).await;
            write_reply(&mut theirs, &Reply::Done { id: r.id + 7 }).await;
            theirs
        });
        assert!(matches!(
            control.call(Command::Stats, T).await,
            Err(ControlError::OutOfStep { .. })
        ));
        drop(fake.await.unwrap());
        // The fake end is gone: closed.
        assert!(matches!(
            control.call(Command::Stats, T).await,
            Err(ControlError::Closed | ControlError::Io(_))
        ));

        // A frame header over the limit.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut control = Control::new(ours);
        let fake = tokio::spawn(async move {
            let _ = read_request(&mut theirs).await;
            theirs.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            theirs
        });
        assert!(matches!(
            control.call(Command::Stats, T).await,
            Err(ControlError::TooLarge)
        ));
        drop(fake.await.unwrap());

        // Garbage.
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let mut control = Control::new(ours);
        let fake = tokio::spawn(async move {
            let _ = read_request(&mut theirs).await;
            theirs.write_all(&3u32.to_be_bytes()).await.unwrap();
            theirs.write_all(b"{x}").await.unwrap();
            theirs
        });
        assert!(matches!(
            control.call(Command::Stats, T).await,
            Err(ControlError::Malformed(_))
        ));
        drop(fake.await.unwrap());

        // Silence.
        let (ours, _theirs) = tokio::io::duplex(1 << 16);
        let mut control = Control::new(ours);
        assert!(matches!(
            control.call(Command::Stats, Duration::from_millis(50)).await,
            Err(ControlError::Timeout(_))
        ));
    }
}
