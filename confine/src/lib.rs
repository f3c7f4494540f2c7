//! Landlock for Rampart's processes: each `main` describes what it needs as a
//! [`Policy`] and applies it before it starts a thread (Landlock below ABI 8
//! restricts only the calling thread and the threads it starts afterwards).
//!
//! The filesystem and TCP rules are a hard requirement: on a kernel that
//! cannot enforce them, [`apply`] fails and the process refuses to start
//! (unless the operator passed `--danger-no-sandbox`). Signal and
//! abstract-socket scoping and the newer filesystem rights are applied where
//! the kernel has them, and the [`Report`] says which.
//!
//! [`seccomp`] adds a system-call deny-list on top. [`probe`] holds the
//! escape probes the tests run inside a sandboxed process.

pub mod handoff;
pub mod probe;
pub mod seccomp;

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// What one process may touch after it restricts itself. Everything else on
/// disk, and every TCP port not named, is denied.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    /// Full access beneath these (its own state).
    pub read_write: Vec<PathBuf>,
    /// Read access beneath these.
    pub read_only: Vec<PathBuf>,
    /// Read and execute beneath these (a binary it starts and its libraries).
    pub read_exec: Vec<PathBuf>,
    /// Read beneath these if they exist (optional system files).
    pub read_if_present: Vec<PathBuf>,
    /// Full access beneath these if they exist (devices a child needs).
    pub read_write_if_present: Vec<PathBuf>,
    /// TCP ports it may bind.
    pub bind_tcp: Vec<u16>,
    /// TCP ports it may connect to.
    pub connect_tcp: Vec<u16>,
}

/// What was enforced, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The kernel's Landlock ABI version.
    pub abi: i32,
    /// Whether every requested right was enforced (else: the hard
    /// requirements were, some best-effort ones were not).
    pub fully_enforced: bool,
    /// The rules, one phrase each.
    pub rules: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.fully_enforced {
            "fully enforced"
        } else {
            "enforced (some best-effort rights unsupported)"
        };
        write!(f, "Landlock ABI {} {level}: {}", self.abi, self.rules.join("; "))
    }
}

/// Why the sandbox could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required path could not be opened for a rule.
    #[error("cannot open {path} for a Landlock rule: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        source: landlock::PathFdError,
    },
    /// The kernel cannot enforce the filesystem and TCP rules, or refused.
    #[error("Landlock cannot enforce the filesystem and TCP rules on this kernel: {0}")]
    Landlock(String),
}

fn describe(kind: &str, paths: &[PathBuf]) -> Option<String> {
    (!paths.is_empty()).then(|| {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        format!("{kind} {}", list.join(", "))
    })
}

/// Restricts the calling thread (and every thread and child it starts from
/// now on) to `policy`.
pub fn apply(policy: &Policy) -> Result<Report, Error> {
    let landlock = |e: landlock::RulesetError| Error::Landlock(e.to_string());
    // Hard: the V1 filesystem rights and V4 TCP rights. Best effort: what
    // later ABIs add (refer, truncate, device ioctl) and the scopes.
    let all_fs = AccessFs::from_all(ABI::V6);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .map_err(landlock)?
        .handle_access(AccessNet::from_all(ABI::V4))
        .map_err(landlock)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all_fs)
        .map_err(landlock)?
        .scope(Scope::from_all(ABI::V6))
        .map_err(landlock)?
        .create()
        .map_err(landlock)?;

    let read = AccessFs::from_read(ABI::V6);
    let read_exec: BitFlags<AccessFs> = read | AccessFs::Execute;
    let required = [
        (&policy.read_write, all_fs),
        (&policy.read_only, read),
        (&policy.read_exec, read_exec),
    ];
    let optional = [(&policy.read_if_present, read), (&policy.read_write_if_present, all_fs)];
    let mut present = Vec::new();
    for (paths, access, must_exist) in required
        .iter()
        .map(|(p, a)| (*p, *a, true))
        .chain(optional.iter().map(|(p, a)| (*p, *a, false)))
    {
        for path in paths {
            let fd = match PathFd::new(path) {
                Ok(fd) => fd,
                Err(source) if must_exist => {
                    return Err(Error::Path {
                        path: path.clone(),
                        source,
                    });
                }
                Err(_) => continue,
            };
            // A file gets only the rights that apply to files.
            let access = if path.is_dir() {
                access
            } else {
                access & AccessFs::from_file(ABI::V6)
            };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(landlock)?;
            if !must_exist {
                present.push(path.clone());
            }
        }
    }
    for &port in &policy.bind_tcp {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::BindTcp))
            .map_err(landlock)?;
    }
    for &port in &policy.connect_tcp {
        ruleset = ruleset
            .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
            .map_err(landlock)?;
    }
    let status = ruleset.restrict_self().map_err(landlock)?;
    let fully_enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => true,
        RulesetStatus::PartiallyEnforced => false,
        RulesetStatus::NotEnforced => return Err(Error::Landlock("not enforced".into())),
    };

    let ports = |kind: &str, ports: &[u16]| {
        if ports.is_empty() {
            format!("TCP {kind}: none")
        } else {
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!("TCP {kind}: {}", list.join(", "))
        }
    };
    let mut rules: Vec<String> = [
        describe("read-write", &policy.read_write),
        describe("read-only", &policy.read_only),
        describe("read+exec", &policy.read_exec),
        describe("read (system files)", &present),
    ]
    .into_iter()
    .flatten()
    .collect();
    if rules.is_empty() {
        rules.push("no filesystem access".into());
    }
    rules.push(ports("bind", &policy.bind_tcp));
    rules.push(ports("connect", &policy.connect_tcp));
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        _ => 0,
    };
    Ok(Report {
        abi,
        fully_enforced,
        rules,
    })
}

/// The directories a dynamically linked binary loads its libraries from,
/// for [`Policy::read_exec`] when a process starts another binary.
pub fn library_dirs() -> Vec<PathBuf> {
    ["/lib", "/lib64", "/usr/lib", "/usr/lib64"]
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// The files the C library's name resolver reads (`getaddrinfo`), for a
/// process that resolves host names after it is sandboxed.
pub fn resolver_files() -> Vec<PathBuf> {
    [
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/nsswitch.conf",
        "/etc/host.conf",
        "/etc/gai.conf",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Where the system's CA certificates live (read by TLS clients that trust
/// the platform roots).
pub fn ca_dirs() -> Vec<PathBuf> {
    ["/etc/ssl/certs", "/usr/share/ca-certificates", "/etc/pki/tls/certs"]
        .into_iter()
        .map(PathBuf::from)
        .collect()
}
