//! The I/O shell around the [`Engine`]: one worker thread per TUN queue and
//! UDP socket pair, and one timer thread.
//!
//! A worker waits on both descriptors, then drains each in batches: up to
//! [`udp::BATCH`] datagrams per `recvmmsg`, decrypted straight into a scratch
//! buffer, TCP segments coalesced ([`Coalescer`]) and written to its TUN
//! queue at the end of the batch; TUN reads (TSO super-packets, split by
//! [`offload::segment`]) encrypted straight into the send batch's slots and
//! sent with one `sendmmsg`. The engine's peer table is read-locked once per
//! batch.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Engine, MIN_SCRATCH, Sink, View};
use crate::offload::{self, COUNTERS, Coalescer, VNET_HDR_LEN, VnetHdr};
use crate::setup::Interface;
use crate::sys::poll;
use crate::sys::udp::{self, RecvBatch, SendBatch};

/// How often peers' timers run (boringtun expects about this).
const TICK: Duration = Duration::from_millis(250);
/// Batches per side before a worker looks at the other side again, so a
/// flood in one direction cannot starve the other.
const ROUNDS: usize = 4;
/// Datagrams encrypted before the batch is sent even if more are waiting:
/// with GSO, 64 messages could hold thousands, a burst that would overrun
/// socket buffers and hold the first datagrams back for too long.
const FLUSH_AFTER: usize = 256;

/// Starts the workers and the timer; they run until the process exits.
pub fn spawn(engine: Arc<Engine>, interface: Interface) -> io::Result<Vec<JoinHandle<()>>> {
    tracing::info!(offloads = ?interface.offloads, "TUN offloads");
    let sockets: Vec<Arc<UdpSocket>> = interface.sockets.into_iter().map(Arc::new).collect();
    // Shared, not dup'ed: the sandbox already forbids creating descriptors.
    let Some(timer_socket) = sockets.first().cloned() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no sockets"));
    };
    let mut handles = Vec::new();
    for (i, (tun, socket)) in interface.queues.into_iter().zip(sockets).enumerate() {
        let engine = engine.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || Worker::new(engine, tun, socket).run())?,
        );
    }
    handles.push(
        std::thread::Builder::new()
            .name("timers".into())
            .spawn(move || timers(&engine, &timer_socket))?,
    );
    Ok(handles)
}

struct Worker {
    engine: Arc<Engine>,
    tun: File,
    socket: Arc<UdpSocket>,
    recv: RecvBatch,
    send: SendBatch,
    scratch: Vec<u8>,
    packet: Vec<u8>,
    segment: Vec<u8>,
    coalescer: Coalescer,
}

/// Where a worker's engine output goes: decrypted packets straight to its
/// TUN queue, datagrams (handshake answers) into its send batch.
struct WorkerSink<'a> {
    tun: &'a File,
    socket: &'a UdpSocket,
    send: &'a mut SendBatch,
    coalescer: &'a mut Coalescer,
}

/// The virtio header of a packet written as it is.
const PLAIN: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

fn write_tun(tun: &File, hdr: &[u8], packet: &[u8]) {
    // A full TUN queue drops, as a full NIC ring would.
    let _ = (&*tun).write_vectored(&[IoSlice::new(hdr), IoSlice::new(packet)]);
}

impl Sink for WorkerSink<'_> {
    fn to_network(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.send.push(self.socket, to, datagram);
    }

    fn to_tun(&mut self, packet: &[u8]) {
        let tun = self.tun;
        if let Some(now) = self.coalescer.push(packet, &mut |hdr, p| write_tun(tun, hdr, p)) {
            write_tun(tun, &PLAIN, now);
        }
    }
}

impl WorkerSink<'_> {
    /// Writes what the coalescer holds; called at the end of each batch.
    fn flush(&mut self) {
        let tun = self.tun;
        let (merged, segments) = self.coalescer.flush(&mut |hdr, p| write_tun(tun, hdr, p));
        if merged > 0 {
            COUNTERS.coalesced.fetch_add(merged, Ordering::Relaxed);
            COUNTERS.segments_in.fetch_add(segments, Ordering::Relaxed);
        }
    }
}

impl Worker {
    fn new(engine: Arc<Engine>, tun: File, socket: Arc<UdpSocket>) -> Worker {
        Worker {
            engine,
            tun,
            socket,
            recv: RecvBatch::default(),
            send: SendBatch::default(),
            scratch: vec![0; MIN_SCRATCH],
            packet: vec![0; udp::SLOT],
            segment: vec![0; udp::SLOT],
            coalescer: Coalescer::default(),
        }
    }

    fn run(mut self) {
        loop {
            let ready = match poll::readable([self.socket.as_fd(), self.tun.as_fd()], Duration::from_secs(1)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "poll failed; worker stops");
                    return;
                }
            };
            if ready[0] {
                self.drain_network();
            }
            if ready[1] {
                self.drain_tun();
            }
        }
    }

    fn drain_network(&mut self) {
        for _ in 0..ROUNDS {
            let n = match self.recv.recv(&self.socket) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "recvmmsg");
                    break;
                }
            };
            let view = self.engine.view();
            let mut sink = WorkerSink {
                tun: &self.tun,
                socket: &self.socket,
                send: &mut self.send,
                coalescer: &mut self.coalescer,
            };
            for i in 0..n {
                let Some((from, datagrams)) = self.recv.get(i) else {
                    continue;
                };
                for datagram in datagrams {
                    view.from_network(from, datagram, &mut self.scratch, &mut sink);
                }
            }
            sink.flush();
            drop(view);
            self.send.flush(&self.socket);
            if n < udp::BATCH {
                break;
            }
        }
    }

    fn drain_tun(&mut self) {
        // Our own handle, so the view does not borrow `self`.
        let engine = self.engine.clone();
        for _ in 0..ROUNDS {
            let view = engine.view();
            let mut read_all = false;
            while !self.send.is_full() && self.send.datagrams() < FLUSH_AFTER {
                let len = match (&self.tun).read(&mut self.packet) {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        read_all = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TUN read");
                        read_all = true;
                        break;
                    }
                };
                self.split_and_encrypt(&view, len);
            }
            drop(view);
            self.send.flush(&self.socket);
            if read_all {
                break;
            }
        }
    }

    /// Splits one TUN read (a super-packet or a plain packet behind its
    /// virtio header) and encrypts each packet into the send batch, sending
    /// the batch whenever it fills. A malformed read is dropped and counted.
    fn split_and_encrypt(&mut self, view: &View<'_>, len: usize) {
        let Worker {
            socket,
            send,
            packet,
            segment,
            ..
        } = self;
        let read = packet.get(..len).unwrap_or_default();
        let result = VnetHdr::split(read).and_then(|(hdr, packet)| {
            let n = offload::segment(&hdr, packet, segment, &mut |p| {
                if send.is_full() {
                    send.flush(socket);
                }
                encrypt_into(view, p, send);
            })?;
            Ok((hdr.gso_type != offload::vnet::GSO_NONE, n))
        });
        match result {
            Ok((true, n)) => {
                COUNTERS.segmented.fetch_add(1, Ordering::Relaxed);
                COUNTERS.segments_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok((false, _)) => {}
            Err(e) => {
                COUNTERS.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "TUN read dropped");
            }
        }
    }
}

/// Encrypts one packet into the batch's next slot and queues it.
fn encrypt_into(view: &View<'_>, packet: &[u8], send: &mut SendBatch) {
    // WireGuard adds 32 bytes; a handshake initiation sent instead is 148.
    let slot = send.slot((packet.len() + 32).max(148));
    let start = slot.as_ptr();
    let Some((to, datagram)) = view.from_tun(packet, slot) else {
        return;
    };
    let len = datagram.len();
    // boringtun writes its output at the start of the buffer we pass; copy
    // only if that ever changes.
    if datagram.as_ptr() != start {
        let owned = datagram.to_vec();
        send.slot(len)[..len].copy_from_slice(&owned);
    }
    send.commit(to, len);
}

/// Sends what the timers produce (handshake retries, keepalives).
struct TimerSink<'a> {
    socket: &'a UdpSocket,
}

impl Sink for TimerSink<'_> {
    fn to_network(&mut self, to: SocketAddr, datagram: &[u8]) {
        // The socket is dual-stack: IPv4 peers are reached as mapped addresses.
        let to = match to {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        };
        let _ = self.socket.send_to(datagram, to);
    }

    fn to_tun(&mut self, _packet: &[u8]) {}
}

fn timers(engine: &Engine, socket: &UdpSocket) {
    let mut scratch = vec![0; MIN_SCRATCH];
    let mut last_reset = Instant::now();
    loop {
        std::thread::sleep(TICK);
        engine.view().tick(&mut scratch, &mut TimerSink { socket });
        if last_reset.elapsed() >= Duration::from_secs(1) {
            engine.reset_rate_limit();
            last_reset = Instant::now();
        }
    }
}
