//! The core's side of the launcher protocol ([`schemas::launcher`]): when
//! `rampart serve` runs as root, the core (an unprivileged user with no
//! capability) asks it to start each tunnel, handing over the tunnel's end
//! of the control socket.
//!
//! One task owns the socket and serves one request at a time. When the
//! socket reaches end-of-file the supervisor is gone and the core stops
//! (see [`Launcher::new`]).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use schemas::launcher::{LaunchReply, LaunchRequest, MAX_LINE, encode_line};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// How long the supervisor gets to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

type Pending = (
    LaunchRequest,
    Option<OwnedFd>,
    oneshot::Sender<Result<LaunchReply, String>>,
);

/// A handle on the supervisor's launcher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Launcher {
    tx: mpsc::Sender<Pending>,
}

impl Launcher {
    /// Serves requests over `socket` (the core's standard input). The
    /// future completes when the supervisor closes the socket.
    pub fn new(socket: std::os::unix::net::UnixStream) -> io::Result<(Self, impl Future<Output = ()> + Send)> {
        socket.set_nonblocking(true)?;
        let socket = UnixStream::from_std(socket)?;
        let (tx, rx) = mpsc::channel(16);
        let (closed_tx, closed_rx) = oneshot::channel();
        tokio::spawn(async move {
            serve(socket, rx).await;
            let _ = closed_tx.send(());
        });
        Ok((Self { tx }, async move {
            let _ = closed_rx.await;
        }))
    }

    /// Starts a tunnel with `control` as its standard input; its pid.
    pub(crate) async fn start(&self, control: OwnedFd) -> Result<u32, String> {
        match self.call(LaunchRequest::Start {}, Some(control)).await? {
            LaunchReply::Started { pid } => Ok(pid),
            LaunchReply::Error { message } => Err(message),
            other => Err(format!("unexpected answer to start: {other:?}")),
        }
    }

    /// Kills a tunnel the supervisor started for us.
    pub(crate) async fn kill(&self, pid: u32) -> Result<(), String> {
        match self.call(LaunchRequest::Kill { pid }, None).await? {
            LaunchReply::Done => Ok(()),
            LaunchReply::Error { message } => Err(message),
            other => Err(format!("unexpected answer to kill: {other:?}")),
        }
    }

    async fn call(&self, request: LaunchRequest, fd: Option<OwnedFd>) -> Result<LaunchReply, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((request, fd, tx))
            .await
            .map_err(|_| "the supervisor is gone".to_owned())?;
        rx.await.map_err(|_| "the supervisor is gone".to_owned())?
    }
}

async fn serve(socket: UnixStream, mut rx: mpsc::Receiver<Pending>) {
    loop {
        tokio::select! {
            pending = rx.recv() => {
                let Some((request, fd, answer)) = pending else { return };
                let outcome = tokio::time::timeout(ANSWER_WAIT, exchange(&socket, &request, fd))
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")));
                match outcome {
                    Ok(reply) => {
                        let _ = answer.send(Ok(reply));
                    }
                    Err(e) => {
                        // The stream is out of step or gone: stop using it.
                        let _ = answer.send(Err(format!("launcher: {e}")));
                        tracing::error!(error = %e, "the launcher socket failed; the core stops");
                        return;
                    }
                }
            }
            () = closed(&socket) => {
                tracing::info!("the supervisor closed the launcher socket");
                return;
            }
        }
    }
}

/// Sends one request (with its descriptor) and reads the one-line answer.
async fn exchange(socket: &UnixStream, request: &LaunchRequest, fd: Option<OwnedFd>) -> io::Result<LaunchReply> {
    let fds: Vec<_> = fd.iter().map(AsFd::as_fd).collect();
    // The descriptor goes with the first byte; ours closes on return.
    confine::handoff::send_line_async(socket, &encode_line(request), &fds).await?;
    let (answer, _stray) = confine::handoff::recv_line_async(socket, MAX_LINE)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the supervisor closed the socket"))?;
    serde_json::from_slice(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Completes when the socket reaches end-of-file (or fails). Bytes nobody
/// asked for are left for the next exchange, which refuses them.
pub(crate) async fn closed(socket: &UnixStream) {
    let mut byte = [0u8; 1];
    let peeked = socket
        .async_io(Interest::READABLE, || {
            rustix::net::recv(
                socket,
                &mut byte,
                rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
            )
            .map(|(n, _)| n)
            .map_err(io::Error::from)
        })
        .await;
    match peeked {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A stand-in for the supervisor's side: answers one start.
    #[tokio::test]
    async fn a_start_hands_over_the_descriptor_and_end_of_file_is_noticed() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (launcher, closed) = Launcher::new(ours).unwrap();
        let supervisor = std::thread::spawn(move || {
            let (line, fds) = confine::handoff::recv_line(&theirs, MAX_LINE).unwrap();
            assert_eq!(
                serde_json::from_slice::<LaunchRequest>(&line).unwrap(),
                LaunchRequest::Start {}
            );
            assert_eq!(fds.len(), 1);
            std::io::Write::write_all(&mut &theirs, &encode_line(&LaunchReply::Started { pid: 42 })).unwrap();
            drop(theirs);
        });
        let (control, _keep) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(launcher.start(control.into()).await.unwrap(), 42);
        supervisor.join().unwrap();
        tokio::time::timeout(Duration::from_secs(5), closed).await.unwrap();
        assert!(launcher.kill(42).await.is_err(), "nobody is listening any more");
    }
}
