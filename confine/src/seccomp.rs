//! A seccomp deny-list for processes that need most of the kernel but none
//! of its rarely used, often exploited corners.
//!
//! Landlock decides what a process may touch; this decides which system
//! calls it may make at all. The edge parses what the internet sends, so if
//! that ever goes wrong the code an attacker controls should find no
//! namespaces to create, no BPF, io_uring, userfaultfd or perf events (the
//! usual ways from a bug to the kernel), no tracing of other processes, no
//! kernel keyrings, modules, mounts or clocks. Each is refused with EPERM;
//! `clone3` gets ENOSYS, so that the C library falls back to `clone`, whose
//! flags (unlike `clone3`'s, which sit behind a pointer) a filter can see,
//! and `clone` with any new-namespace flag is refused.
//!
//! A deny-list rather than the tunnel's allow-list: the edge runs tokio,
//! rustls and the system resolver (for the ACME CA), whose exact system
//! calls vary with the C library and the kernel; what is listed here none
//! of them uses.

use std::collections::BTreeMap;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Why the filter could not be built or loaded.
#[derive(Debug, thiserror::Error)]
#[error("seccomp: {0}")]
pub struct Error(String);

fn err(e: impl std::fmt::Display) -> Error {
    Error(e.to_string())
}

/// The system calls refused outright.
pub const DENIED: &[(&str, i64)] = &[
    // Namespaces and the filesystem tree.
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    // Other processes' memory and execution.
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    // Kernel attack surface a web server never needs.
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // The machine itself.
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
];

/// `clone` flags that create namespaces (`CLONE_NEWTIME` is 0x80).
const NEW_NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80,
];

/// The two filters: the deny-list (EPERM) and `clone3` (ENOSYS).
fn programs() -> Result<[BpfProgram; 2], Error> {
    let arch = std::env::consts::ARCH.try_into().map_err(|e: BackendError| err(e))?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
    let mut clone_rules = Vec::new();
    for flag in NEW_NAMESPACE_FLAGS {
        let set = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag).map_err(err)?;
        clone_rules.push(SeccompRule::new(vec![set]).map_err(err)?);
    }
    denied.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;
    Ok([
        deny.try_into().map_err(|e: BackendError| err(e))?,
        clone3.try_into().map_err(|e: BackendError| err(e))?,
    ])
}

/// Loads the filters on the calling thread; threads it starts afterwards
/// inherit them. Needs `no_new_privs`, which [`crate::apply`] has set.
/// Returns how many system calls it refuses (`clone` only with a
/// new-namespace flag), for the start-up log.
pub fn deny_kernel_surface() -> Result<usize, Error> {
    for program in programs()? {
        seccompiler::apply_filter(&program).map_err(err)?;
    }
    Ok(DENIED.len() + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_build_for_this_machine_and_list_each_call_once() {
        let programs = programs().map_err(|e| e.to_string());
        assert!(programs.is_ok(), "{programs:?}");
        let mut numbers: Vec<i64> = DENIED.iter().map(|&(_, nr)| nr).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), DENIED.len());
        assert!(!numbers.contains(&libc::SYS_clone) && !numbers.contains(&libc::SYS_clone3));
    }
}
