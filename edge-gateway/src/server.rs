//! Accept loops for the two listeners, with the connection limits.
//!
//! Connections are bounded by a semaphore: when it is exhausted the loop
//! stops accepting and new clients wait in the kernel's queue instead of
//! costing memory here. TLS handshakes and request heads each have a time
//! limit, and request heads a size limit, so a slow or oversized client
//! cannot hold a slot for long.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::acme::Acme;
use crate::gateway::Gateway;
use crate::redirect::Redirector;
use crate::workers::{self, Workers};

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most simultaneous connections per listener.
    pub max_connections: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Time for the TLS handshake and for each request head.
    pub header_timeout: Duration,
    /// HTTPS worker threads; 0 for one per CPU.
    pub workers: usize,
}

/// How long open connections get to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

fn http1(limits: Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper's floor for its read buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(100)
        // One buffer per answer (head and body copied together): rustls
        // encrypts it as one record either way, but a vectored write costs
        // it a list of the slices, allocated per write (callgrind: 810
        // instructions per request less this way).
        .writev(false);
    builder
}

fn http2(limits: Limits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// What every HTTPS connection of a listener shares.
struct Https {
    tls: Arc<rustls::ServerConfig>,
    acme: Option<Acme>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    limits: Limits,
}

/// Serves HTTPS on `listener` until `shutdown`: this task accepts, and
/// [`Limits::workers`] worker threads serve the connections, each with its
/// own copy of `gateway` (see [`crate::workers`]).
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    acme: Option<Acme>,
    gateway: &Gateway,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let https = Arc::new(Https {
        tls,
        acme,
        http1: http1(limits),
        http2: http2(limits),
        limits,
    });
    let workers = Workers::start("https", workers::count(limits.workers), || {
        Arc::new(gateway.for_worker())
    })?;
    accept_loop(listener, limits, shutdown, |tcp, peer, graceful, permit| {
        // The socket leaves this runtime's reactor for the worker's.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => return debug!(%peer, error = %e, "handing the connection to a worker failed"),
        };
        let https = Arc::clone(&https);
        workers.run(move |gateway| {
            let gateway = Arc::clone(gateway);
            async move {
                if let Ok(tcp) = TcpStream::from_std(tcp) {
                    serve_tls(&https, tcp, peer, gateway, graceful).await;
                }
                drop(permit);
            }
        });
    })
    .await;
    workers.stop(Duration::from_secs(1)).await;
    Ok(())
}

/// One HTTPS connection: handshake (answering a TLS-ALPN-01 validation if
/// that is what it is), then requests until either side closes.
async fn serve_tls(https: &Https, tcp: TcpStream, peer: SocketAddr, gateway: Arc<Gateway>, graceful: Watcher) {
    let handshake = async {
        // Read the ClientHello first: a TLS-ALPN-01 validation may be for an
        // order another host started, so its certificate may first have to
        // be fetched from the core.
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        let hello = start.client_hello();
        let challenge = crate::tls::offers_acme_alpn(&hello);
        if challenge && let (Some(acme), Some(name)) = (&https.acme, hello.server_name()) {
            let name = name.to_owned();
            acme.prepare_alpn(&name).await;
        }
        let stream = start.into_stream(Arc::clone(&https.tls)).await?;
        Ok::<_, std::io::Error>((stream, challenge))
    };
    let tls = match tokio::time::timeout(https.limits.header_timeout, handshake).await {
        Ok(Ok((_, true))) => {
            // RFC 8737: the validation ends with the handshake; dropping the
            // stream closes the connection.
            return debug!(%peer, "answered a TLS-ALPN-01 validation");
        }
        Ok(Ok((tls, false))) => tls,
        Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return debug!(%peer, "TLS handshake timed out"),
    };
    let service = service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
    });
    // ALPN chose the protocol; a client that offered none speaks HTTP/1.1
    // (RFC 9113 §3.2: HTTP/2 over TLS is negotiated with ALPN). No guessing
    // from the first bytes, which would put a rewinding reader under every
    // read of the connection.
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let ended = if h2 {
        graceful.watch(https.http2.serve_connection(io, service)).await
    } else {
        graceful.watch(https.http1.serve_connection(io, service)).await
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Serves the plain-HTTP redirector on `listener` until `shutdown`, on the
/// calling runtime (it carries little traffic). HTTP/1.1 only: browsers and
/// ACME validators speak nothing else in clear text, so there is no HTTP/2
/// parser on this port.
pub async fn serve_http(listener: TcpListener, redirector: Redirector, limits: Limits, shutdown: CancellationToken) {
    let builder = Arc::new(http1(limits));
    accept_loop(listener, limits, shutdown, |tcp, _peer, graceful, permit| {
        let redirector = redirector.clone();
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let redirector = redirector.clone();
                async move { Ok::<_, Infallible>(redirector.handle(&request).await) }
            });
            let _ = graceful
                .watch(builder.serve_connection(TokioIo::new(tcp), service))
                .await;
            drop(permit);
        });
    })
    .await;
}

/// Accepts until `shutdown`, handing each connection with its slot to
/// `dispatch`; then drains the open connections.
async fn accept_loop<F>(listener: TcpListener, limits: Limits, shutdown: CancellationToken, dispatch: F)
where
    F: Fn(TcpStream, SocketAddr, Watcher, OwnedSemaphorePermit),
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE; back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        dispatch(tcp, canonical_peer(peer), graceful.watcher(), permit);
    }
    drop(listener);
    info!("listener closed; draining open connections");
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("connections still open after {DRAIN:?}; closing them");
    }
}

/// IPv4 clients on a dual-stack socket appear as `::ffff:a.b.c.d`; show
/// and key them as IPv4.
fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => peer,
        },
        SocketAddr::V4(_) => peer,
    }
}
