//! The sandbox the tunnel enters after setup and before its first packet:
//!
//! 1. no-new-privs, so nothing it could exec gains privileges;
//! 2. every capability dropped: effective, permitted, inheritable, ambient
//!    and the bounding set (the TUN queues and sockets are already open);
//! 3. Landlock with every filesystem and TCP right handled and none granted:
//!    no file can be opened, no TCP port bound or connected, and (where the
//!    kernel has scopes) no signal to processes outside the domain;
//! 4. a seccomp allowlist: packet I/O, memory, threads, time. Everything
//!    else (open, socket, exec, ioctl, ptrace, ...) fails with EPERM.
//!
//! It runs on the main thread before any other thread exists: capabilities,
//! Landlock (below ABI 8) and seccomp filters are per thread, and threads
//! started afterwards inherit them.

use std::collections::BTreeMap;

use landlock::{ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus, Scope};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

/// Why the sandbox could not be applied. The tunnel refuses to serve then.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// prctl or capset failed.
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
    /// Landlock could not enforce the filesystem and TCP rules.
    #[error("landlock: {0}")]
    Landlock(String),
    /// The seccomp filter could not be built or loaded.
    #[error("seccomp: {0}")]
    Seccomp(String),
}

/// Applies all four layers; returns a one-line summary for the log.
pub fn apply() -> Result<String, SandboxError> {
    no_new_privs()?;
    drop_capabilities()?;
    let landlock = landlock()?;
    seccomp()?;
    Ok(format!(
        "no-new-privs, no capabilities, {landlock}, seccomp allowlist ({} syscalls)",
        ALLOWED.len() + 1
    ))
}

fn no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if ret != 0 {
        return Err(SandboxError::Sys("no_new_privs", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn drop_capabilities() -> Result<(), SandboxError> {
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the
    // capset below removes. Without CAP_SETPCAP (not root, or `become_user`
    // emptied the set already) there is nothing this process could drop.
    match empty_bounding_set() {
        Err(SandboxError::Sys(_, e)) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => other?,
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    set_caps(0)
}

/// Drops every capability from the bounding set. Numbers past the kernel's
/// last capability fail with EINVAL, which ends the loop.
fn empty_bounding_set() -> Result<(), SandboxError> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                return Ok(());
            }
            return Err(SandboxError::Sys("drop bounding set", err));
        }
    }
    Ok(())
}

/// The capabilities setup needs and keeps until [`apply`]: creating the
/// interface and forcing socket buffer sizes (CAP_NET_ADMIN), and a port
/// below 1024 if the server has one (CAP_NET_BIND_SERVICE).
const SETUP_CAPS: u32 = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_BIND_SERVICE);
/// From linux/capability.h (libc does not carry them).
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;

/// Started as root by `rampart serve`: become `uid`/`gid` (no supplementary
/// groups) holding only [`SETUP_CAPS`], with an empty bounding set, so that
/// what runs setup is an unprivileged user with two capabilities and
/// [`apply`] later drops those. Call on the main thread before any other
/// thread exists, after entering the network namespace (which needs
/// CAP_SYS_ADMIN).
pub fn become_user(uid: u32, gid: u32) -> Result<(), SandboxError> {
    // While still root: empty the bounding set (needs CAP_SETPCAP, which
    // goes below). It limits what an exec could gain; the capabilities in
    // hand are not affected.
    empty_bounding_set()?;
    // Keep the permitted set across the change of user; the capset below
    // trims it to SETUP_CAPS.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::Sys("keepcaps", std::io::Error::last_os_error()));
    }
    // SAFETY: an empty list: size 0 and a null pointer, which setgroups
    // accepts.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(SandboxError::Sys("setgroups", std::io::Error::last_os_error()));
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(SandboxError::Sys("setresgid", std::io::Error::last_os_error()));
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(SandboxError::Sys("setresuid", std::io::Error::last_os_error()));
    }
    set_caps(SETUP_CAPS)?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

/// Sets effective and permitted to `caps` (capabilities 0..32), inheritable
/// to nothing.
fn set_caps(caps: u32) -> Result<(), SandboxError> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    data[0].effective = caps;
    data[0].permitted = caps;
    // SAFETY: capset reads a v3 header and two data structs, which is what
    // we pass; both live across the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if ret != 0 {
        return Err(SandboxError::Sys("capset", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Filesystem and TCP are hard requirements (the security claim rests on
/// them); scopes and the newer filesystem rights are best effort.
fn landlock() -> Result<String, SandboxError> {
    let err = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .map_err(err)?
        .handle_access(AccessNet::from_all(ABI::V4))
        .map_err(err)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI::V6))
        .map_err(err)?
        .scope(Scope::from_all(ABI::V6))
        .map_err(err)?
        .create()
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced (filesystem and TCP fully)",
        RulesetStatus::NotEnforced => return Err(SandboxError::Landlock("not enforced".into())),
    };
    let abi = abi_version();
    Ok(format!("landlock ABI {abi} {enforced}: no filesystem, no TCP"))
}

/// The kernel's Landlock ABI version, for the log.
fn abi_version() -> i64 {
    // SAFETY: landlock_create_ruleset with a null attr, size 0 and the
    // VERSION flag only returns a number.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) }
}

/// What the running tunnel may call.
const ALLOWED: &[libc::c_long] = &[
    // Packets and the control socket.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendmmsg,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_close,
    // Memory.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    // Threads and their synchronisation.
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // Time and randomness.
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
];

fn seccomp() -> Result<(), SandboxError> {
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED.iter().map(|&nr| (nr, Vec::new())).collect();
    // prctl only to name threads (std does it for named threads).
    let name_only =
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::PR_SET_NAME as u64).map_err(err)?;
    rules.insert(libc::SYS_prctl, vec![SeccompRule::new(vec![name_only]).map_err(err)?]);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(err)?;
    let program: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
    seccompiler::apply_filter(&program).map_err(|e| SandboxError::Seccomp(e.to_string()))
}
