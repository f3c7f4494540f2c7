//! A lean HTTP/1.1 client for the loopback hop to the core.
//!
//! The hop carries one kind of exchange: a request the edge wrote itself,
//! answered by the core with a whole body of known length. For that, a
//! general client (a pool keyed by host, a task per connection, channels
//! between them) was half of the edge's cost per request. Here each HTTPS
//! worker keeps its own set of idle connections; an exchange takes one,
//! writes the request in one call, reads the answer with `httparse` and puts
//! the connection back. Event streams, which never end, still go through
//! hyper (see `forward::CoreClient::open_stream`).
//!
//! What the core sends is parsed strictly: a head of at most 64 KiB, a
//! `content-length` (no chunked coding; the core only streams events),
//! nothing after the body. Anything else fails the exchange and closes the
//! connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// The most idle connections a worker keeps.
const MAX_IDLE: usize = 512;
/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in an answer.
const MAX_FIELDS: usize = 64;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// No connection could be made.
    #[error("connecting to the core: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection failed while sending or receiving.
    #[error("talking to the core: {0}")]
    Io(#[from] std::io::Error),
    /// The request could not be written, or the connection closed before
    /// any of the answer arrived.
    #[error("the core closed the connection before answering")]
    Unanswered,
    /// The connection closed in the middle of the answer.
    #[error("the core closed the connection in the middle of an answer")]
    Truncated,
    /// The answer is not one this client accepts.
    #[error("the core's answer: {0}")]
    Protocol(String),
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Idle connections to one address, reused most recent first.
#[derive(Debug)]
pub struct Loopback {
    addr: SocketAddr,
    idle: Mutex<Vec<TcpStream>>,
}

impl Loopback {
    /// A client for `addr` with no connection yet.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) and reads
    /// the answer, whose body may be at most `max_body` bytes; `bodiless`
    /// says the request was a HEAD. On a reused connection, a failed write
    /// or a close before any byte of answer means the core had closed it
    /// (when it stopped, or while it was idle) and the close was not yet
    /// seen: the request goes once more, on a new connection. (Were the
    /// core to die while handling it, the new connection finds the core
    /// gone or restarted.)
    pub async fn exchange(&self, request: &[u8], bodiless: bool, max_body: usize) -> Result<Answer, LoopbackError> {
        if let Some(conn) = self.take_idle() {
            match self.exchange_on(conn, request, bodiless, max_body).await {
                Err(LoopbackError::Unanswered) => {}
                done => return done,
            }
        }
        let conn = TcpStream::connect(self.addr).await.map_err(LoopbackError::Connect)?;
        conn.set_nodelay(true).map_err(LoopbackError::Connect)?;
        self.exchange_on(conn, request, bodiless, max_body).await
    }

    /// The most recently used idle connection that the core has not closed
    /// meanwhile (it does when it restarts).
    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            if !closed_by_peer(&conn) {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn exchange_on(
        &self,
        mut conn: TcpStream,
        request: &[u8],
        bodiless: bool,
        max_body: usize,
    ) -> Result<Answer, LoopbackError> {
        if conn.write_all(request).await.is_err() {
            // Nothing the core could act on arrived.
            return Err(LoopbackError::Unanswered);
        }
        let mut buf = BytesMut::with_capacity(4096);
        let (head, reusable) = loop {
            if conn.read_buf(&mut buf).await? == 0 {
                return Err(if buf.is_empty() {
                    LoopbackError::Unanswered
                } else {
                    LoopbackError::Truncated
                });
            }
            if let Some(head) = parse_head(&buf, bodiless)? {
                break head;
            }
            if buf.len() > MAX_HEAD {
                return Err(LoopbackError::Protocol("head too large".into()));
            }
        };
        if head.body_len > max_body {
            return Err(LoopbackError::Protocol(format!("body of {} bytes", head.body_len)));
        }
        let total = head.head_len + head.body_len;
        buf.reserve(total.saturating_sub(buf.len()));
        while buf.len() < total {
            if conn.read_buf(&mut buf).await? == 0 {
                return Err(LoopbackError::Truncated);
            }
        }
        if buf.len() > total {
            return Err(LoopbackError::Protocol("bytes after the body".into()));
        }
        let body = buf.split_off(head.head_len).freeze();
        if reusable {
            self.put_idle(conn);
        }
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

/// Whether the reactor has already seen the peer close `conn` (or an
/// error on it). Asks without a syscall and without waiting: a connection
/// still marked readable from its last answer is not taken as closed.
fn closed_by_peer(conn: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(conn.ready(Interest::READABLE)).poll(&mut cx) {
        Poll::Ready(Ok(ready)) => ready.is_read_closed() || ready.is_error(),
        Poll::Ready(Err(_)) => true,
        Poll::Pending => false,
    }
}

struct Head {
    status: StatusCode,
    headers: HeaderMap,
    head_len: usize,
    body_len: usize,
}

/// Parses the answer's head once it is all in `buf`; `None` while it is
/// not. Also says whether the connection may carry another exchange.
fn parse_head(buf: &[u8], bodiless: bool) -> Result<Option<(Head, bool)>, LoopbackError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(LoopbackError::Protocol(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| LoopbackError::Protocol(format!("status {code}")))?;
    if status.is_informational() {
        return Err(LoopbackError::Protocol("an informational answer".into()));
    }
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut length = None;
    let mut reusable = response.version == Some(1);
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| LoopbackError::Protocol(format!("field name {:?}", field.name)))?;
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| LoopbackError::Protocol(format!("value of {name}")))?;
        if name == http::header::TRANSFER_ENCODING {
            return Err(LoopbackError::Protocol("transfer-encoding".into()));
        }
        if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| LoopbackError::Protocol("content-length".into()))?;
            if length.is_some_and(|m| m != n) {
                return Err(LoopbackError::Protocol("two content-lengths".into()));
            }
            length = Some(n);
        }
        if name == http::header::CONNECTION && value.as_bytes().eq_ignore_ascii_case(b"close") {
            reusable = false;
        }
        headers.append(name, value);
    }
    let no_body = bodiless || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let body_len = match (no_body, length) {
        (true, _) => 0,
        (false, Some(n)) => n,
        (false, None) => return Err(LoopbackError::Protocol("no content-length".into())),
    };
    Ok(Some((
        Head {
            status,
            headers,
            head_len,
            body_len,
        },
        reusable,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn heads_are_read_strictly() {
        let ok = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let (head, reusable) = parse_head(ok, false).unwrap().unwrap();
        assert_eq!((head.status, head.body_len, reusable), (StatusCode::CREATED, 2, true));
        assert_eq!(head.head_len, ok.len() - 2);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap().is_none());
        let close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(!parse_head(close, false).unwrap().unwrap().1);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_head(no_content, false).unwrap().unwrap().0.body_len, 0);
        for bad in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 2000 What\r\ncontent-length: 0\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse_head(bad, false).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A core that answers each connection's first `per_conn` requests
    /// with `answer` and then closes it; counts the connections.
    async fn core(answer: &'static [u8], per_conn: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for _ in 0..per_conn {
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = tcp.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                        }
                        tcp.write_all(answer).await.unwrap();
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn connections_are_reused_until_the_core_closes_them() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let (addr, accepted) = core(ok, 2).await;
        let client = Loopback::new(addr);
        for n in 0..5 {
            let answer = client.exchange(b"GET / HTTP/1.1\r\n\r\n", false, 1024).await.unwrap();
            assert_eq!(answer.body, "hello", "request {n}");
            // Lets the close of a spent connection reach the reactor.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn oversized_and_trailing_answers_fail() {
        let big: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n";
        let trailing: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab";
        for answer in [big, trailing] {
            let client = Loopback::new(core(answer, 1).await.0);
            let e = client
                .exchange(b"GET / HTTP/1.1\r\n\r\n", false, 1024)
                .await
                .unwrap_err();
            assert!(matches!(e, LoopbackError::Protocol(_)), "{e:?}");
            assert!(client.idle.lock().unwrap().is_empty());
        }
    }
}
