//! Where log lines go: standard error, gathered per thread where the thread
//! asks for it.
//!
//! At the default level the edge writes an access line per request, and a
//! `write` system call per line cost it more than the line's formatting
//! (docs/performance.md, "The access log"). A worker thread (the edge's
//! HTTPS workers) that calls [`buffer_this_thread`] instead keeps
//! its lines in a buffer of its own and writes them when it runs out of
//! work (the runtime's park hook calls [`flush_this_thread`]), when the
//! next line would take the buffer past [`MAX_WRITE`] bytes, and when the
//! thread ends. So a line waits at most until its worker is next idle, and
//! under load one `write` carries many lines.
//!
//! Each `write` holds whole lines and at most [`MAX_WRITE`] bytes (a longer
//! line goes alone): writes of up to `PIPE_BUF` bytes to a pipe are never
//! interleaved with another process's, so lines stay whole when processes
//! share their standard error with their supervisor. Threads that did not
//! ask for a buffer write each line at once.
//!
//! What a crash can lose is the current burst of the thread that crashed:
//! the panic hook flushes that thread's buffer before the panic message
//! (see [`crate::init`]), and a `SIGKILL` loses what no worker has written yet.

use std::cell::RefCell;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// The most one `write` carries: `PIPE_BUF` on Linux.
pub const MAX_WRITE: usize = 4096;

thread_local! {
    /// This thread's lines not yet written; `None` on threads that write
    /// each line at once.
    static PENDING: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The `MakeWriter` for the subscriber: standard error.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// Takes one formatted line (the subscriber formats a whole event before it
/// writes, and writes it with one `write_all`).
#[derive(Debug)]
pub struct Line;

impl Write for Line {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        // On a thread that does not buffer (or while its locals are torn
        // down) the line goes out at once.
        let kept = PENDING
            .try_with(|pending| {
                let Ok(mut pending) = pending.try_borrow_mut() else {
                    return false;
                };
                let Some(buffer) = pending.as_mut() else {
                    return false;
                };
                if buffer.len() + line.len() > MAX_WRITE {
                    write_out(buffer);
                    buffer.clear();
                }
                if line.len() >= MAX_WRITE {
                    write_out(line);
                } else {
                    buffer.extend_from_slice(line);
                }
                true
            })
            .unwrap_or(false);
        if !kept {
            write_out(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `lines` to standard error. A failed write (standard error
/// closed, a full disk) drops them: there is nowhere left to report it.
fn write_out(lines: &[u8]) {
    if !lines.is_empty() {
        #[cfg(not(test))]
        let _ = io::stderr().lock().write_all(lines);
        #[cfg(test)]
        tests::WRITES.with(|w| w.borrow_mut().push(lines.to_vec()));
    }
}

/// From now on this thread's lines wait in a buffer until
/// [`flush_this_thread`], a full buffer, or the end of the returned guard.
#[must_use = "the buffer is written when the guard is dropped"]
pub fn buffer_this_thread() -> Buffered {
    PENDING.with(|pending| {
        pending
            .borrow_mut()
            .get_or_insert_with(|| Vec::with_capacity(MAX_WRITE));
    });
    Buffered(std::marker::PhantomData)
}

/// Writes what this thread has gathered (nothing on a thread that does not
/// buffer). Cheap when there is nothing: the park hook calls it every time
/// a worker runs out of work.
pub fn flush_this_thread() {
    // `try_with`: the hook may run while the thread's locals are torn down.
    let _ = PENDING.try_with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut()
            && let Some(buffer) = pending.as_mut()
        {
            write_out(buffer);
            buffer.clear();
        }
    });
}

/// Ends this thread's buffering, writing what is left. Not `Send`: it
/// belongs to the thread that asked.
#[derive(Debug)]
pub struct Buffered(std::marker::PhantomData<*const ()>);

impl Drop for Buffered {
    fn drop(&mut self) {
        flush_this_thread();
        let _ = PENDING.try_with(|pending| {
            if let Ok(mut pending) = pending.try_borrow_mut() {
                *pending = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    thread_local! {
        /// What `write_out` would have written to standard error, write by write.
        pub(super) static WRITES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    fn writes() -> Vec<Vec<u8>> {
        WRITES.with(|w| w.borrow_mut().drain(..).collect())
    }

    fn pending_len() -> Option<usize> {
        PENDING.with(|p| p.borrow().as_ref().map(Vec::len))
    }

    #[test]
    fn a_buffering_thread_keeps_lines_until_flushed() {
        std::thread::spawn(|| {
            let guard = buffer_this_thread();
            Line.write_all(b"one\n").unwrap();
            Line.write_all(b"two\n").unwrap();
            assert!(writes().is_empty());
            flush_this_thread();
            assert_eq!(writes(), [b"one\ntwo\n".to_vec()]);
            flush_this_thread();
            assert!(writes().is_empty(), "nothing left, nothing written");
            Line.write_all(b"three\n").unwrap();
            drop(guard);
            assert_eq!(writes(), [b"three\n".to_vec()], "the guard writes what is left");
            assert_eq!(pending_len(), None, "and ends the buffering");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_write_never_passes_the_limit_and_holds_whole_lines() {
        std::thread::spawn(|| {
            let _guard = buffer_this_thread();
            let line = |fill: u8, len: usize| {
                let mut line = vec![fill; len - 1];
                line.push(b'\n');
                line
            };
            for n in 0..5 {
                Line.write_all(&line(b'a' + n, 1000)).unwrap();
            }
            // The fifth line would have taken the buffer past MAX_WRITE.
            assert_eq!(
                writes(),
                [[line(b'a', 1000), line(b'b', 1000), line(b'c', 1000), line(b'd', 1000)].concat()]
            );
            // A line of MAX_WRITE bytes or more goes alone, after what was there.
            Line.write_all(&line(b'y', MAX_WRITE + 10)).unwrap();
            assert_eq!(writes(), [line(b'e', 1000), line(b'y', MAX_WRITE + 10)]);
            assert_eq!(pending_len(), Some(0));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn other_threads_write_each_line_at_once() {
        std::thread::spawn(|| {
            Line.write_all(b"at once\n").unwrap();
            assert_eq!(writes(), [b"at once\n".to_vec()]);
            assert_eq!(pending_len(), None);
        })
        .join()
        .unwrap();
    }
}
