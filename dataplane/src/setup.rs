//! Creating the interface and the sockets: everything that needs
//! CAP_NET_ADMIN, done once, before [`crate::sandbox`] takes it away.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::net::{IpAddr, UdpSocket};

use schemas::tunnel::Setup;

use crate::sys::{netlink, tun, udp};

/// Most workers the tunnel starts, whatever the machine.
const MAX_WORKERS: usize = 64;

/// What setup made.
#[derive(Debug)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub ifindex: u32,
    /// One TUN queue per worker.
    pub queues: Vec<File>,
    /// One UDP socket per worker, all on the same port.
    pub sockets: Vec<UdpSocket>,
    /// What the TUN device offloads to us.
    pub offloads: tun::Offloads,
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The request was not usable.
    #[error("invalid setup: {0}")]
    Invalid(String),
    /// A syscall failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> SetupError {
    let what = what.into();
    move |source| SetupError::Sys { what, source }
}

/// Checks a setup request before anything is created.
pub fn validate(setup: &Setup) -> Result<(), SetupError> {
    if !tun::valid_name(&setup.interface) {
        return Err(SetupError::Invalid(format!(
            "interface name {:?}: 1 to 15 printable bytes",
            setup.interface
        )));
    }
    if let Some(bad) = setup.addresses.iter().find(|a| !a.is_valid()) {
        return Err(SetupError::Invalid(format!(
            "address {}/{}: prefix too long",
            bad.address, bad.prefix_len
        )));
    }
    let has_v6 = setup.addresses.iter().any(|a| a.address.is_ipv6());
    let min_mtu = if has_v6 { 1280 } else { 576 };
    if setup.mtu < min_mtu {
        return Err(SetupError::Invalid(format!("mtu {} is below {min_mtu}", setup.mtu)));
    }
    Ok(())
}

/// How many workers to run: as asked, or one per CPU. Reads cgroup files,
/// so it runs before the sandbox.
pub fn workers(asked: u16) -> usize {
    let n = match asked {
        0 => std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        n => usize::from(n),
    };
    n.clamp(1, MAX_WORKERS)
}

/// Creates the TUN interface with one queue per handle in `devices` (from
/// [`tun::open_devices`]; one worker each), configures it over netlink and
/// binds one UDP socket per worker.
pub fn create(setup: &Setup, devices: Vec<std::fs::File>) -> Result<Interface, SetupError> {
    validate(setup)?;
    let workers = devices.len();
    let queues = tun::open(&setup.interface, devices).map_err(sys(format!("create TUN {}", setup.interface)))?;
    let offloads = queues.first().map_or(tun::Offloads::Plain, tun::enable_offloads);
    let ifindex = netlink::ifindex(&setup.interface).map_err(sys("look up the interface"))?;
    let mut nl = netlink::Netlink::open().map_err(sys("open netlink"))?;
    for addr in &setup.addresses {
        nl.add_address(ifindex, addr)
            .map_err(sys(format!("add address {}/{}", addr.address, addr.prefix_len)))?;
    }
    nl.set_mtu_up(ifindex, setup.mtu)
        .map_err(sys("set MTU and bring the link up"))?;

    // With port 0 the first socket picks one and the others join it.
    let first = udp::bind(setup.listen_port, setup.socket_buffer)
        .map_err(sys(format!("bind UDP port {}", setup.listen_port)))?;
    let port = first.local_addr().map_err(sys("read the bound port"))?.port();
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(udp::bind(port, setup.socket_buffer).map_err(sys(format!("bind UDP port {port}")))?);
    }
    Ok(Interface {
        name: setup.interface.clone(),
        ifindex,
        queues,
        sockets,
        offloads,
    })
}

/// Whether an address is one of the interface's own (for logs).
pub fn describe(setup: &Setup) -> String {
    setup
        .addresses
        .iter()
        .map(|a| match a.address {
            IpAddr::V4(v4) => format!("{v4}/{}", a.prefix_len),
            IpAddr::V6(v6) => format!("{v6}/{}", a.prefix_len),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
