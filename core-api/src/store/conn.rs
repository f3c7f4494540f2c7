//! Connections: one writer on a thread of its own, a few read-only readers.
//!
//! SQLite allows one writer at a time anyway; serialising writes in-process
//! means a write never waits on `SQLITE_BUSY`, and it is what makes the audit
//! chain safe: reading the last hash and appending the next entry happen on
//! the one writer, one write after another. Readers run concurrently thanks
//! to WAL, each closure on a blocking thread (`spawn_blocking`).
//!
//! Writes are committed in groups. Every commit waits for the disk
//! (`synchronous = FULL`), and that wait was most of a write's time: the
//! writer thread takes every write that is waiting when it starts (up to
//! [`GROUP`]), runs each in a savepoint of one transaction, and commits
//! them with one sync. Each write still stands or falls alone — a write
//! that fails or panics is rolled back to its savepoint and the others go
//! on — and no caller hears of success before the commit that holds its
//! change (and its audit entry) is on disk. Under no load a group is one
//! write, committed at once.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Params, Row, Transaction, TransactionBehavior};

use super::{StoreError, migrations};

/// Readers kept open between reads. A read never waits for one (a long
/// read, such as verifying a big audit chain, must not hold up others):
/// when all are busy it opens another, closed again afterwards if this
/// many are idle. That costs the schema parsed and every statement
/// compiled anew, which with 4 kept was a fifth of the core's time
/// listing users under 16 concurrent requests.
const IDLE_READERS: usize = 16;
/// Statements each connection keeps prepared (rusqlite keeps 16): more than
/// the core runs, so that no request parses its SQL again.
const CACHED_STATEMENTS: usize = 256;
/// How long a connection waits on another process's lock (a backup, the
/// offline verifier) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most writes committed together: enough for every request a busy
/// core has in flight, few enough that the first of them is not kept long.
const GROUP: usize = 64;

/// A write waiting for the writer. Given the group's transaction it runs and
/// returns what to tell its caller once the commit is known (nothing when it
/// failed: it has answered already); given an error, it answers with it
/// without running.
type Job = Box<dyn for<'t, 'c> FnOnce(Result<&'t Transaction<'c>, StoreError>) -> Option<Done> + Send>;
/// Tells a write's caller how the commit of its group went.
type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

#[derive(Debug)]
pub(super) struct Db {
    path: PathBuf,
    /// To the writer thread; `None` only while dropping.
    writes: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
}

/// `execute` and `query_row` through the connection's statement cache.
/// SQLite compiles a statement's text before running it; rusqlite's own
/// `Connection::execute` and `query_row` do that on every call, which was an
/// eighth of the core's time creating users (docs/performance.md). Every
/// statement the store runs with fixed text goes through these instead.
pub(super) trait Cached {
    /// Runs one statement; the number of rows changed.
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// The first row of one query, through `f`.
    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: an open
    // transaction is rolled back when its guard drops during unwinding.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "SQLite refused WAL mode");
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each write of a group runs in a savepoint, whose statement journal
    // SQLite would otherwise keep in a temporary file outside the data
    // directory, where the core's sandbox rightly refuses it.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The audit log is the record of what happened: a committed entry must
    // survive a power cut, so sync on every commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// A read-only connection; also what the offline verifier uses, so it never
/// creates or changes a database.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl Db {
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = open_writer(path)?;
        migrations::migrate(&mut conn)?;
        let (writes, jobs) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || write_groups(conn, &jobs))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            writes: Some(writes),
            writer: Some(writer),
            readers: Mutex::new(Vec::with_capacity(IDLE_READERS)),
        })
    }

    /// Runs `f` on a reader on a blocking thread.
    pub(super) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.with_reader(f))
            .await
            .map_err(StoreError::Join)?
    }

    /// Runs `f` on the writer, in a savepoint of an immediate transaction
    /// (see the module's text on groups); `Ok` once the change is committed,
    /// and nothing of it is kept when `f` fails.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let outcome = tx.and_then(f);
            match outcome {
                Ok(value) => Some(Box::new(move |committed: Result<(), StoreError>| {
                    let _ = reply.send(committed.map(|()| value));
                })),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        });
        let writes = self.writes.as_ref().ok_or(StoreError::Writer)?;
        writes.send(job).map_err(|_| StoreError::Writer)?;
        // A dropped reply means the write panicked (and was rolled back).
        answer.await.map_err(|_| StoreError::Writer)?
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut readers = lock(&self.readers);
        if readers.len() < IDLE_READERS {
            readers.push(conn);
        }
        out
    }
}

impl Drop for Db {
    /// Lets the writer finish the writes it has and waits for it, so that a
    /// store dropped at shutdown has committed (or refused) every write it
    /// took.
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread: commits the waiting writes a group at a time until
/// every sender is gone.
fn write_groups(mut conn: Connection, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = VecDeque::with_capacity(GROUP);
        group.push_back(first);
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push_back(job),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, group);
    }
}

/// Runs `group` in one transaction, each write in a savepoint, and commits.
/// Should SQLite abandon the transaction itself (it does on a full disk or
/// an I/O error), the writes run so far are told so and the rest go on in
/// a new transaction.
fn commit_group(conn: &mut Connection, mut group: VecDeque<Job>) {
    while !group.is_empty() {
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                for job in group.drain(..) {
                    job(Err(each(&e)));
                }
                return;
            }
        };
        let mut ran = Vec::with_capacity(group.len());
        let mut abandoned = false;
        while let Some(job) = group.pop_front() {
            match run_one(&tx, job) {
                Ok(Some(done)) => ran.push(done),
                Ok(None) => {}
                Err(()) => {
                    abandoned = true;
                    break;
                }
            }
        }
        // Dropping an abandoned transaction rolls back what is left of it.
        let committed = if abandoned {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("a write's failure ended its group's transaction".into()),
            ))
        } else {
            tx.commit()
        };
        for done in ran {
            done(committed.as_ref().map(|_| ()).map_err(each));
        }
    }
}

/// Runs one write in a savepoint of `tx`: what to tell it after the commit,
/// or `None` when it failed or panicked and nothing of it is left in `tx`.
/// `Err` when the transaction can no longer be trusted (SQLite ended it, or
/// would not open the savepoint or roll the failed write back): then
/// nothing of it is committed.
fn run_one(tx: &Transaction<'_>, job: Job) -> Result<Option<Done>, ()> {
    if let Err(e) = tx.exec("SAVEPOINT write", []) {
        job(Err(each(&e)));
        return Err(());
    }
    // A panic drops the job's reply, which its caller sees as a failed
    // write; the writer thread goes on with the next.
    let done = catch_unwind(AssertUnwindSafe(|| job(Ok(tx)))).unwrap_or(None);
    if tx.is_autocommit() {
        // SQLite rolled the whole transaction back (a full disk, an I/O
        // error): every write in it is lost.
        return Err(());
    }
    if done.is_none() && tx.exec("ROLLBACK TO write", []).is_err() {
        return Err(());
    }
    // Releasing merges the savepoint into the transaction; if it fails,
    // the savepoint stays open and the commit releases it.
    let _ = tx.exec("RELEASE write", []);
    Ok(done)
}

/// One SQLite error, for each write it concerns (rusqlite's error is not
/// `Clone`).
fn each(e: &rusqlite::Error) -> StoreError {
    let (code, message) = match e {
        rusqlite::Error::SqliteFailure(code, message) => (*code, message.clone()),
        other => (
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    StoreError::Database(rusqlite::Error::SqliteFailure(code, message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use rusqlite::params;

    use super::*;

    async fn db() -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("rampart.db")).unwrap();
        db.write(|tx| Ok(tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")?))
            .await
            .unwrap();
        (dir, Arc::new(db))
    }

    /// Starts one write for each `n`: `sql` with `n` as `?1`.
    fn write_each(
        db: &Arc<Db>,
        sql: &'static str,
        ns: std::ops::Range<i64>,
    ) -> Vec<tokio::task::JoinHandle<Result<usize, StoreError>>> {
        ns.map(|n| {
            let db = Arc::clone(db);
            tokio::spawn(async move { db.write(move |tx| Ok(tx.exec(sql, params![n])?)).await })
        })
        .collect()
    }

    /// Starts a write that holds the writer for `hold`, then adds 1000 to
    /// `t`: writes started meanwhile queue up behind it.
    fn slow_write(db: &Arc<Db>, hold: Duration) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
        let db = Arc::clone(db);
        tokio::spawn(async move {
            db.write(move |tx| {
                std::thread::sleep(hold);
                Ok(tx.exec("INSERT INTO t (n) VALUES (1000)", [])?)
            })
            .await
        })
    }

    /// Column `n` of `table`, in order.
    async fn numbers(db: &Arc<Db>, table: &'static str) -> Vec<i64> {
        db.read(move |conn| {
            let mut stmt = conn.prepare(&format!("SELECT n FROM {table} ORDER BY n"))?;
            Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap()
    }

    /// Every write that fails after changing something, or panics, is
    /// rolled back alone; the others in its group are committed, and each
    /// caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_write_in_a_group_stands_or_falls_alone() {
        let (_dir, db) = db().await;
        // A slow first write lets the others queue up behind it, so they
        // are committed as groups.
        let slow = slow_write(&db, Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let writes: Vec<_> = (0..120i64)
            .map(|n| {
                let db = Arc::clone(&db);
                tokio::spawn(async move {
                    db.write(move |tx| {
                        tx.exec("INSERT INTO t (n) VALUES (?1)", params![n])?;
                        match n % 4 {
                            1 => Err(StoreError::NotFound),
                            2 if n % 8 == 2 => panic!("write {n} panics after its insert"),
                            // The same key again: SQLite refuses the statement.
                            3 => {
                                tx.exec("INSERT INTO t (n) VALUES (?1)", params![n])?;
                                Ok(n)
                            }
                            _ => Ok(n),
                        }
                    })
                    .await
                })
            })
            .collect();
        assert_eq!(slow.await.unwrap().unwrap(), 1);
        for (n, write) in (0..120i64).zip(writes) {
            let outcome = write.await.unwrap();
            match n % 4 {
                0 => assert_eq!(outcome.unwrap(), n),
                1 => assert!(matches!(outcome, Err(StoreError::NotFound)), "{n}: {outcome:?}"),
                2 if n % 8 == 2 => assert!(matches!(outcome, Err(StoreError::Writer)), "{n}: {outcome:?}"),
                2 => assert_eq!(outcome.unwrap(), n),
                _ => assert!(matches!(outcome, Err(StoreError::Database(_))), "{n}: {outcome:?}"),
            }
        }
        let expected: Vec<i64> = (0..120).filter(|n| n % 4 == 0 || n % 8 == 6).chain([1000]).collect();
        assert_eq!(numbers(&db, "t").await, expected);
        // The writer outlives the panics.
        db.write(|tx| Ok(tx.exec("INSERT INTO t (n) VALUES (2000)", [])?))
            .await
            .unwrap();
    }

    /// A write is answered only once its group is committed: by then a new
    /// connection sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_answered_write_is_committed() {
        let (dir, db) = db().await;
        let writes: Vec<_> = (0..64i64)
            .map(|n| {
                let db = Arc::clone(&db);
                let path = dir.path().join("rampart.db");
                tokio::spawn(async move {
                    db.write(move |tx| Ok(tx.exec("INSERT INTO t (n) VALUES (?1)", params![n])?))
                        .await
                        .unwrap();
                    let fresh = open_reader(&path).unwrap();
                    fresh
                        .row("SELECT count(*) FROM t WHERE n = ?1", params![n], |r| {
                            r.get::<_, i64>(0)
                        })
                        .unwrap()
                })
            })
            .collect();
        for write in writes {
            assert_eq!(write.await.unwrap(), 1);
        }
    }

    /// A full disk (here: the file capped with `max_page_count`) fails
    /// writes, maybe a whole group's transaction; whatever happens, every
    /// write answered `Ok` is in the database and every refused one is not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_disk_loses_no_answered_write() {
        let (_dir, db) = db().await;
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE b (n INTEGER PRIMARY KEY, data BLOB NOT NULL)")?;
            let pages: i64 = tx.row("PRAGMA page_count", [], |r| r.get(0))?;
            tx.pragma_update(None, "max_page_count", pages + 16)?;
            Ok(())
        })
        .await
        .unwrap();
        let writes = write_each(&db, "INSERT INTO b (n, data) VALUES (?1, zeroblob(1500))", 0..200);
        let mut answered = Vec::new();
        let mut refused = 0;
        for (n, write) in (0..200i64).zip(writes) {
            match write.await.unwrap() {
                Ok(_) => answered.push(n),
                Err(StoreError::Database(_)) => refused += 1,
                Err(other) => panic!("{n}: {other:?}"),
            }
        }
        assert!(!answered.is_empty() && refused > 0, "{answered:?} {refused}");
        assert_eq!(numbers(&db, "b").await, answered);
    }

    /// Dropping the store waits for the writes the writer has taken, even
    /// when their callers have gone (a request cancelled at shutdown).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_finishes_its_writes() {
        let (dir, db) = db().await;
        // The writer is busy with a slow write while 16 more queue up, and
        // their callers are cancelled: only the store holds them now.
        let slow = slow_write(&db, Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pending = write_each(&db, "INSERT INTO t (n) VALUES (?1)", 0..16);
        tokio::time::sleep(Duration::from_millis(50)).await;
        for write in pending.iter().chain([&slow]) {
            write.abort();
        }
        for write in pending.into_iter().chain([slow]) {
            assert!(write.await.unwrap_err().is_cancelled());
        }
        // The last handle: dropping it returns once the writer is done.
        let db = Arc::into_inner(db).unwrap();
        drop(db);
        let fresh = open_reader(&dir.path().join("rampart.db")).unwrap();
        let count: i64 = fresh.row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 17);
    }
}
