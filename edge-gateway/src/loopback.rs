//! A lean HTTP/1.1 client for the loopback hop to the core.
//!
//! The hop carries one kind of exchange: a request the edge wrote itself,
//! answered by the core with a whole body of known length. For that, a
//! general client (a pool keyed by host, a task per connection, channels
//! between them) was half of the edge's cost per request. Here each HTTPS
//! worker keeps its own connections; event streams, which never end, still
//! go through hyper (see `forward::CoreClient::open_stream`).
//!
//! **Batches.** Requests a worker makes before its next turn at the
//! connection's writer (in practice: in the same pass over the connections
//! that had something to read) share one connection and one `write`, as an
//! HTTP/1.1 pipeline; the core reads them with one `read` and answers them
//! in order. Sending on loopback runs the receiver's TCP input in the
//! sender's time, so one send for several requests cuts both processes'
//! cost per request (docs/performance.md has the numbers). A connection
//! takes a batch only when it has nothing in flight, and a batch holds at
//! most `batch` requests, so a slow request can only delay the requests
//! that arrived with it, never later ones. `batch` = 1 is one request per
//! connection at a time.
//!
//! What the core sends is parsed strictly: a head of at most 64 KiB, a
//! `content-length` (no chunked coding; the core only streams events),
//! nothing that no request asked for. Anything else fails the exchange and
//! closes the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, oneshot};

/// The most idle connections a worker keeps.
const MAX_IDLE: usize = 512;
/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in an answer.
const MAX_FIELDS: usize = 64;
/// Free space the reader asks for before each `read` from the core: a
/// batch's answers (16 of a few hundred bytes each) in one.
const READ_ROOM: usize = 16 * 1024;
/// The most requests in one batch, unless configured.
pub const DEFAULT_BATCH: usize = 16;

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
    /// An earlier request's answer on the same connection was refused, so
    /// this one's cannot be found; the core may have acted on it.
    #[error("the connection to the core failed on an earlier answer")]
    Abandoned,
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

/// Connections to one address, shared by the exchanges of one worker.
#[derive(Debug)]
pub struct Loopback {
    addr: SocketAddr,
    batch: usize,
    patience: Duration,
    pool: Arc<Mutex<Pool>>,
}

#[derive(Debug, Default)]
struct Pool {
    /// The connection whose batch is still being gathered (its writer has
    /// not run yet); a new request joins it.
    forming: Option<Arc<Conn>>,
    /// Connections with nothing in flight, the most recently used last.
    idle: Vec<Arc<Conn>>,
}

/// One connection, driven by a writer task and a reader task.
#[derive(Debug, Default)]
struct Conn {
    state: Mutex<ConnState>,
    wake_writer: Notify,
}

#[derive(Debug, Default)]
struct ConnState {
    /// Requests of the forming batch, not yet written.
    unsent: Vec<u8>,
    /// Who waits for which answer, in the order the requests were written.
    waiting: VecDeque<Waiter>,
    /// Nothing more goes on this connection.
    closed: bool,
    /// Since when the core owes an answer without having sent one: the
    /// start of the batch, or the last answer while more are owed.
    owing_since: Option<Instant>,
}

#[derive(Debug)]
struct Waiter {
    bodiless: bool,
    max_body: usize,
    reply: oneshot::Sender<Result<Answer, LoopbackError>>,
}

impl ConnState {
    /// Adds a request to the forming batch; the core owes an answer from
    /// now on if it owed none.
    fn enqueue(&mut self, request: &[u8], waiter: Waiter) {
        if self.waiting.is_empty() {
            self.owing_since = Some(Instant::now());
        }
        self.unsent.extend_from_slice(request);
        self.waiting.push_back(waiter);
    }
}

/// Locks, taking over a lock whose holder panicked: every critical
/// section here leaves the state consistent at each step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Loopback {
    /// A client for `addr` with no connection yet, putting at most `batch`
    /// requests (at least 1) on a connection at a time. A connection with
    /// requests in flight on which nothing arrives for `patience` is
    /// closed (its requests' callers have given up by then).
    pub fn new(addr: SocketAddr, batch: usize, patience: Duration) -> Self {
        Self {
            addr,
            batch: batch.max(1),
            // Idle connections wake this often to look: not in a spin.
            patience: patience.max(Duration::from_secs(1)),
            pool: Arc::default(),
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) and reads
    /// the answer, whose body may be at most `max_body` bytes; `bodiless`
    /// says the request was a HEAD. A failed write, or a close before any
    /// byte of this request's answer, means the core had closed the
    /// connection (when it stopped, or while it was idle) or will not read
    /// further on it (after answering with `connection: close`), so it
    /// never saw the request: the request goes once more, on a new
    /// connection. (Were the core to die while handling it, the new
    /// connection finds the core gone or restarted.)
    pub async fn exchange(&self, request: &[u8], bodiless: bool, max_body: usize) -> Result<Answer, LoopbackError> {
        let waiter = |reply| Waiter {
            bodiless,
            max_body,
            reply,
        };
        let (reply, answer) = oneshot::channel();
        if let Err(waiter) = self.join(request, waiter(reply)) {
            self.open(request, waiter);
        }
        match answer.await {
            Ok(Err(LoopbackError::Unanswered)) | Err(_) => {}
            Ok(done) => return done,
        }
        let (reply, answer) = oneshot::channel();
        self.open(request, waiter(reply));
        answer.await.unwrap_or(Err(LoopbackError::Unanswered))
    }

    /// Adds the request to the forming batch, or starts a batch on an idle
    /// connection; hands the waiter back when there is neither.
    fn join(&self, request: &[u8], waiter: Waiter) -> Result<(), Waiter> {
        let mut pool = lock(&self.pool);
        if let Some(conn) = pool.forming.take() {
            let mut state = lock(&conn.state);
            if !state.closed && state.waiting.len() < self.batch {
                state.enqueue(request, waiter);
                let full = state.waiting.len() >= self.batch;
                drop(state);
                if !full {
                    pool.forming = Some(conn);
                }
                return Ok(());
            }
        }
        while let Some(conn) = pool.idle.pop() {
            let mut state = lock(&conn.state);
            if state.closed {
                continue;
            }
            state.enqueue(request, waiter);
            drop(state);
            conn.wake_writer.notify_one();
            if self.batch > 1 {
                pool.forming = Some(conn);
            }
            return Ok(());
        }
        Err(waiter)
    }

    /// Opens a new connection with the request as its first batch, which
    /// requests made while it connects join. The connection is made by a
    /// task of its own, so that a caller who gives up (a client that goes
    /// away) cannot strand the others in the batch.
    fn open(&self, request: &[u8], waiter: Waiter) {
        let conn = Arc::new(Conn::default());
        lock(&conn.state).enqueue(request, waiter);
        {
            let mut pool = lock(&self.pool);
            if self.batch > 1 && pool.forming.is_none() {
                pool.forming = Some(Arc::clone(&conn));
            }
        }
        tokio::spawn(drive(conn, self.addr, self.patience, Arc::downgrade(&self.pool)));
    }
}

/// Connects, then writes the connection's batches (in a task of its own)
/// and reads their answers.
async fn drive(conn: Arc<Conn>, addr: SocketAddr, patience: Duration, pool: Weak<Mutex<Pool>>) {
    let connected = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp.set_nodelay(true).map(|()| tcp),
        Err(e) => Err(e),
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        // The others in the batch try once more, on a connection of their
        // own, and see for themselves.
        Err(e) => return conn.fail(LoopbackError::Connect(e)),
    };
    let (read, write) = tcp.into_split();
    conn.wake_writer.notify_one();
    tokio::spawn(write_batches(Arc::clone(&conn), pool.clone(), write));
    read_answers(conn, pool, read, patience).await;
}

impl Drop for Loopback {
    /// Closes the idle connections (their tasks end; the busy ones end
    /// once their answers are in).
    fn drop(&mut self) {
        let idle = std::mem::take(&mut lock(&self.pool).idle);
        for conn in idle {
            conn.fail(LoopbackError::Unanswered);
        }
    }
}

impl Conn {
    /// Whether the core has owed an answer on this connection for longer
    /// than `patience`.
    fn overdue(&self, patience: Duration) -> bool {
        lock(&self.state)
            .owing_since
            .is_some_and(|since| since.elapsed() >= patience)
    }

    /// Closes the connection and fails every waiter: the first with
    /// `first`, the rest as never answered — the core answers in order, so
    /// it has not acted on them — except after an answer this client
    /// refused, when the core may have gone on to act on them.
    fn fail(&self, first: LoopbackError) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.unsent.clear();
        let mut waiting = std::mem::take(&mut state.waiting).into_iter();
        drop(state);
        let refused = matches!(first, LoopbackError::Protocol(_));
        if let Some(waiter) = waiting.next() {
            let _ = waiter.reply.send(Err(first));
        }
        for waiter in waiting {
            let why = if refused {
                LoopbackError::Abandoned
            } else {
                LoopbackError::Unanswered
            };
            let _ = waiter.reply.send(Err(why));
        }
        self.wake_writer.notify_one();
    }
}

/// Writes each batch in one call, once the tasks that could join it have
/// run and the runtime has read its sockets once more.
async fn write_batches(conn: Arc<Conn>, pool: Weak<Mutex<Pool>>, mut tcp: OwnedWriteHalf) {
    let mut batch = Vec::new();
    loop {
        conn.wake_writer.notified().await;
        // One more turn of the runtime first: it polls the sockets before it
        // runs a task that yielded, so requests that arrived meanwhile join
        // this batch (under load ~10 a batch instead of ~8; fewer writes
        // here and reads at the core, docs/performance.md).
        tokio::task::yield_now().await;
        if let Some(pool) = pool.upgrade() {
            let mut pool = lock(&pool);
            if pool.forming.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                pool.forming = None;
            }
        }
        {
            let mut state = lock(&conn.state);
            if state.closed {
                return;
            }
            std::mem::swap(&mut batch, &mut state.unsent);
        }
        if batch.is_empty() {
            continue;
        }
        if tcp.write_all(&batch).await.is_err() {
            // Nothing the core could act on arrived whole.
            conn.fail(LoopbackError::Unanswered);
            return;
        }
        batch.clear();
    }
}

/// Reads answers and hands each to its waiter; returns the connection to
/// the pool once every request on it is answered.
async fn read_answers(conn: Arc<Conn>, pool: Weak<Mutex<Pool>>, mut tcp: OwnedReadHalf, patience: Duration) {
    let mut buf = BytesMut::new();
    loop {
        let owing_since = lock(&conn.state).owing_since;
        let wait = owing_since.map_or(patience, |since| patience.saturating_sub(since.elapsed()));
        // Room for a whole batch of answers in one `read`: `read_buf` alone
        // would grow a full buffer by only 64 bytes at a time.
        if buf.capacity() - buf.len() < READ_ROOM / 2 {
            buf.reserve(READ_ROOM);
        }
        let read = match tokio::time::timeout(wait, tcp.read_buf(&mut buf)).await {
            Ok(read) => read,
            // A core this slow is stuck; the callers have given up.
            Err(_) if conn.overdue(patience) => {
                return conn.fail(LoopbackError::Io(std::io::ErrorKind::TimedOut.into()));
            }
            // Nothing owed (an idle connection waits as long as the core
            // keeps it), or a batch that started after the wait began.
            Err(_) => continue,
        };
        match read {
            Ok(0) if buf.is_empty() => return conn.fail(LoopbackError::Unanswered),
            Ok(0) => return conn.fail(LoopbackError::Truncated),
            Ok(_) => {}
            // A reset before any answer: the core closed the connection
            // with the request unread.
            Err(_) if buf.is_empty() => return conn.fail(LoopbackError::Unanswered),
            Err(e) => return conn.fail(LoopbackError::Io(e)),
        }
        while !buf.is_empty() {
            match take_answer(&conn, &mut buf) {
                Ok(None) => break,
                Ok(Some(reusable)) if !reusable => return conn.fail(LoopbackError::Unanswered),
                Ok(Some(_)) => {}
                Err(e) => return conn.fail(e),
            }
        }
        if buf.is_empty() {
            give_back(&conn, &pool);
        }
    }
}

/// Hands the first whole answer in `buf` to its waiter. `None` while the
/// answer is not all there; otherwise whether the connection may carry
/// more.
fn take_answer(conn: &Conn, buf: &mut BytesMut) -> Result<Option<bool>, LoopbackError> {
    let (bodiless, max_body) = match lock(&conn.state).waiting.front() {
        Some(waiter) => (waiter.bodiless, waiter.max_body),
        None => return Err(LoopbackError::Protocol("bytes no request asked for".into())),
    };
    let Some((head, reusable)) = parse_head(buf, bodiless)? else {
        if buf.len() > MAX_HEAD {
            return Err(LoopbackError::Protocol("head too large".into()));
        }
        return Ok(None);
    };
    if head.body_len > max_body {
        return Err(LoopbackError::Protocol(format!("body of {} bytes", head.body_len)));
    }
    let total = head.head_len + head.body_len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let body = buf.split_to(total).split_off(head.head_len).freeze();
    let waiter = {
        let mut state = lock(&conn.state);
        let waiter = state.waiting.pop_front();
        state.owing_since = (!state.waiting.is_empty()).then(Instant::now);
        waiter
    };
    if let Some(waiter) = waiter {
        // The waiter may have given up (its time ran out): the answer is
        // read all the same, to keep the connection in step.
        let _ = waiter.reply.send(Ok(Answer {
            status: head.status,
            headers: head.headers,
            body,
        }));
    }
    Ok(Some(reusable))
}

/// Puts a connection with nothing in flight back in the pool (or closes it
/// when the pool is full or gone).
fn give_back(conn: &Arc<Conn>, pool: &Weak<Mutex<Pool>>) {
    let Some(pool) = pool.upgrade() else {
        return conn.fail(LoopbackError::Unanswered);
    };
    let mut pool = lock(&pool);
    let state = lock(&conn.state);
    if state.closed || !state.waiting.is_empty() || !state.unsent.is_empty() {
        return;
    }
    drop(state);
    if pool.idle.len() < MAX_IDLE {
        pool.idle.push(Arc::clone(conn));
    } else {
        drop(pool);
        conn.fail(LoopbackError::Unanswered);
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
        // httparse has already refused names that are not tokens and values
        // with control characters. The framing and hop-by-hop fields are
        // consumed here and the banner-like ones dropped, without the cost
        // of a `HeaderName` and a map entry each: nothing downstream reads
        // them, and none of them may reach the client.
        let raw = field.name.as_bytes();
        let is = |known: &str| raw.eq_ignore_ascii_case(known.as_bytes());
        if is("transfer-encoding") {
            return Err(LoopbackError::Protocol("transfer-encoding".into()));
        }
        if is("content-length") {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| LoopbackError::Protocol("content-length".into()))?;
            if length.is_some_and(|m| m != n) {
                return Err(LoopbackError::Protocol("two content-lengths".into()));
            }
            length = Some(n);
            continue;
        }
        if is("connection") {
            if field.value.eq_ignore_ascii_case(b"close") {
                reusable = false;
            }
            continue;
        }
        if is("date") || is("server") || is("keep-alive") {
            continue;
        }
        let name =
            HeaderName::from_bytes(raw).map_err(|_| LoopbackError::Protocol(format!("field name {:?}", field.name)))?;
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| LoopbackError::Protocol(format!("value of {name}")))?;
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

    /// How the test core behaves on each connection.
    #[derive(Clone, Copy)]
    struct Behaviour {
        /// Answers this many requests, then closes.
        per_conn: usize,
        /// Answers the last of those with `connection: close`.
        say_close: bool,
        /// Waits this long before the connection's first answer.
        first_delay_ms: u64,
    }

    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

    const PLAIN: Behaviour = Behaviour {
        per_conn: usize::MAX,
        say_close: false,
        first_delay_ms: 0,
    };

    /// A core that answers requests (pipelined or not) in order, each with
    /// its own path as the body; counts connections and reads.
    async fn echo_core(how: Behaviour) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (count, read_count) = (Arc::clone(&accepted), Arc::clone(&reads));
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let reads = Arc::clone(&read_count);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut answered = 0;
                    let mut buf = [0u8; 4096];
                    while answered < how.per_conn {
                        let n = tcp.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        reads.fetch_add(1, Ordering::SeqCst);
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = seen.drain(..end + 4).collect();
                            let path = String::from_utf8_lossy(&head).split(' ').nth(1).unwrap().to_owned();
                            if answered == 0 && how.first_delay_ms > 0 {
                                tokio::time::sleep(std::time::Duration::from_millis(how.first_delay_ms)).await;
                            }
                            answered += 1;
                            let last = answered == how.per_conn;
                            let close = if last && how.say_close {
                                "connection: close\r\n"
                            } else {
                                ""
                            };
                            let answer =
                                format!("HTTP/1.1 200 OK\r\n{close}content-length: {}\r\n\r\n{path}", path.len());
                            tcp.write_all(answer.as_bytes()).await.unwrap();
                            if last {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted, reads)
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nhost: core\r\n\r\n").into_bytes()
    }

    /// Makes the `n` requests /0 … /n-1 in one turn of the runtime and
    /// checks that each got its own answer.
    async fn all_at_once(client: &Arc<Loopback>, n: usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let client = Arc::clone(client);
            tasks.spawn(async move {
                let path = format!("/{i}");
                let answer = client.exchange(&get(&path), false, 1024).await.unwrap();
                assert_eq!(answer.body, path);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    #[tokio::test]
    async fn connections_are_reused_until_the_core_closes_them() {
        let (addr, accepted, _) = echo_core(Behaviour { per_conn: 2, ..PLAIN }).await;
        let client = Loopback::new(addr, DEFAULT_BATCH, PATIENCE);
        for n in 0..5 {
            let answer = client.exchange(&get("/x"), false, 1024).await.unwrap();
            assert_eq!(answer.body, "/x", "request {n}");
            // Lets the close of a spent connection reach the reader.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn requests_made_together_share_a_connection_and_a_write() {
        let (addr, accepted, reads) = echo_core(PLAIN).await;
        let client = Arc::new(Loopback::new(addr, 4, PATIENCE));
        all_at_once(&client, 10).await;
        // Batches of 4, 4 and 2, one connection and one read each.
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        // The connections are idle again and take the next batches.
        all_at_once(&client, 12).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(reads.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_batch_of_one_is_a_connection_per_request() {
        let (addr, accepted, _) = echo_core(PLAIN).await;
        let client = Arc::new(Loopback::new(addr, 1, PATIENCE));
        all_at_once(&client, 5).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn requests_after_a_close_go_again_on_a_new_connection() {
        // The core answers one request per connection, saying it closes:
        // the rest of each batch was never read and is sent again.
        let once = Behaviour {
            per_conn: 1,
            say_close: true,
            ..PLAIN
        };
        let (addr, accepted, _) = echo_core(once).await;
        let client = Arc::new(Loopback::new(addr, 8, PATIENCE));
        all_at_once(&client, 3).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_core_that_never_answers_fails_after_one_retry() {
        let mute = Behaviour { per_conn: 0, ..PLAIN };
        let (addr, accepted, _) = echo_core(mute).await;
        let client = Loopback::new(addr, DEFAULT_BATCH, PATIENCE);
        let e = client.exchange(&get("/x"), false, 1024).await.unwrap_err();
        assert!(matches!(e, LoopbackError::Unanswered), "{e:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_nobody_waits_for_any_more_is_skipped() {
        let slow_first = Behaviour {
            first_delay_ms: 200,
            ..PLAIN
        };
        let (addr, accepted, _) = echo_core(slow_first).await;
        let client = Loopback::new(addr, DEFAULT_BATCH, PATIENCE);
        let request = get("/late");
        let late = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            client.exchange(&request, false, 1024),
        );
        assert!(late.await.is_err());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let answer = client.exchange(&get("/next"), false, 1024).await.unwrap();
        assert_eq!(answer.body, "/next");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_caller_who_leaves_while_connecting_strands_nobody() {
        let (addr, accepted, _) = echo_core(PLAIN).await;
        let client = Arc::new(Loopback::new(addr, DEFAULT_BATCH, PATIENCE));
        let (first, second) = (Arc::clone(&client), Arc::clone(&client));
        let leaver = tokio::spawn(async move { first.exchange(&get("/left"), false, 1024).await });
        let stayer = tokio::spawn(async move { second.exchange(&get("/stayed"), false, 1024).await });
        // Both start: the first opens the connection, the second joins its
        // batch; then the first goes away before the connection is made.
        tokio::task::yield_now().await;
        leaver.abort();
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), stayer).await;
        assert_eq!(answer.unwrap().unwrap().unwrap().body, "/stayed");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stuck_core_is_given_up_on() {
        let stuck = Behaviour {
            first_delay_ms: 60_000,
            ..PLAIN
        };
        let (addr, accepted, _) = echo_core(stuck).await;
        let mut client = Loopback::new(addr, DEFAULT_BATCH, PATIENCE);
        client.patience = std::time::Duration::from_millis(200);
        let started = std::time::Instant::now();
        let e = client.exchange(&get("/x"), false, 1024).await.unwrap_err();
        assert!(
            matches!(&e, LoopbackError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut),
            "{e:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(lock(&client.pool).idle.is_empty());
    }

    /// A core that answers every request on a connection with `answer`.
    async fn fixed_core(answer: &'static [u8]) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while tcp.read(&mut buf).await.unwrap_or(0) > 0 {
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn oversized_and_trailing_answers_fail() {
        let big: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n";
        let trailing: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab";
        let client = Loopback::new(fixed_core(big).await, DEFAULT_BATCH, PATIENCE);
        let e = client.exchange(&get("/"), false, 1024).await.unwrap_err();
        assert!(matches!(e, LoopbackError::Protocol(_)), "{e:?}");
        // The answer is whole, but what follows it is no answer to anything:
        // the connection is not used again.
        let client = Loopback::new(fixed_core(trailing).await, DEFAULT_BATCH, PATIENCE);
        let answer = client.exchange(&get("/"), false, 1024).await.unwrap();
        assert_eq!(answer.body, "a");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let pool = lock(&client.pool);
        assert!(pool.idle.is_empty() && pool.forming.is_none());
    }

    #[tokio::test]
    async fn after_a_refused_answer_the_rest_of_the_batch_is_abandoned() {
        let client = Arc::new(Loopback::new(fixed_core(b"HTTP/1.1 200 OK\r\n\r\n").await, 4, PATIENCE));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let client = Arc::clone(&client);
            tasks.spawn(async move { client.exchange(&get("/"), false, 1024).await.unwrap_err() });
        }
        let mut errors = Vec::new();
        while let Some(e) = tasks.join_next().await {
            errors.push(e.unwrap().to_string());
        }
        errors.sort();
        assert_eq!(
            errors.iter().filter(|e| e.contains("content-length")).count(),
            1,
            "{errors:?}"
        );
        assert_eq!(
            errors.iter().filter(|e| e.contains("earlier answer")).count(),
            2,
            "{errors:?}"
        );
    }
}
