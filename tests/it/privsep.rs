//! Privilege separation: `rampart serve` as root runs the edge, the core and
//! each tunnel as its own unprivileged user, hands the edge the ports it
//! bound as root, and starts tunnels for the core (which holds no
//! capability). These tests read what each running process really is from
//! /proc, the way an operator would check it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::Rampart;
use harness::api::Session;
use harness::netns::{self, Netns};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The fields of /proc/PID/status this test reads.
#[derive(Debug)]
struct Status {
    uids: Vec<u32>,
    gids: Vec<u32>,
    groups: String,
    cap_eff: u64,
    cap_prm: u64,
    cap_amb: u64,
    cap_bnd: u64,
    no_new_privs: bool,
    seccomp: u32,
}

fn status(pid: u32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_owned()
    };
    let ids = |name: &str| field(name).split_whitespace().map(|n| n.parse().unwrap()).collect();
    let caps = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
    Status {
        uids: ids("Uid"),
        gids: ids("Gid"),
        groups: field("Groups"),
        cap_eff: caps("CapEff"),
        cap_prm: caps("CapPrm"),
        cap_amb: caps("CapAmb"),
        cap_bnd: caps("CapBnd"),
        no_new_privs: field("NoNewPrivs") == "1",
        seccomp: field("Seccomp").parse().unwrap(),
    }
}

/// `(uid, gid)` of a user, from NSS.
fn user(name: &str) -> (u32, u32) {
    let out = Command::new("getent").args(["passwd", name]).output().unwrap();
    assert!(out.status.success(), "{name} exists after rampart serve ran as root");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let fields: Vec<&str> = line.trim().split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

fn assert_runs_as(pid: u32, name: &str) -> Status {
    let (uid, gid) = user(name);
    let s = status(pid);
    assert!(uid != 0 && gid != 0, "{name} is unprivileged");
    assert_eq!(s.uids, [uid; 4], "{name}: real, effective, saved and fs uid");
    assert_eq!(s.gids, [gid; 4], "{name}: real, effective, saved and fs gid");
    assert_eq!(s.groups, "", "{name}: no supplementary groups (root's are gone)");
    assert_eq!(s.cap_eff, 0, "{name}: no effective capability: {s:?}");
    assert_eq!(s.cap_prm, 0, "{name}: no permitted capability: {s:?}");
    assert_eq!(s.cap_amb, 0, "{name}: no ambient capability: {s:?}");
    assert!(s.no_new_privs, "{name}: no-new-privs (its sandbox sets it)");
    s
}

/// A tunnel other than `old` that has finished setup (it runs under its
/// seccomp filter), waiting up to 20 s; one just started is still root.
fn serving_tunnel(rampart: &Rampart, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pid = crate::tunnel::tunnel_pid(rampart);
        if pid != old
            && harness::alive(pid)
            && std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("Seccomp:\t2"))
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no new serving tunnel; log:\n{}",
            rampart.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

/// `rampart serve` as root with tunnels in a fresh namespace, and one
/// server created and started through the edge: `(namespace, instance,
/// admin session, server id)`.
async fn with_a_running_server(tag: &str, network: &str, port: u16) -> (Netns, Rampart, Session, String) {
    let srv = Netns::new(tag);
    let srv_name = srv.name().to_owned();
    let rampart = Rampart::start_with(move |cmd| {
        cmd.env_remove("RAMPART_NO_TUNNELS")
            .env("RAMPART_TUNNEL_NETNS", &srv_name);
    })
    .await;
    let s = Session::admin(&rampart).await;
    let (status_code, server) = s
        .send(
            Method::POST,
            "/api/v1/servers",
            json!({"name": tag, "network": network, "port": port}),
        )
        .await;
    assert_eq!(status_code, StatusCode::CREATED, "{server}");
    let sid = server["id"].as_str().unwrap().to_owned();
    let r = s
        .request(Method::POST, &format!("/api/v1/servers/{sid}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap_or_default());
    (srv, rampart, s, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip and the tunnel; .ci/run runs it"]
async fn each_process_runs_as_its_own_user_without_capabilities() {
    netns::require(&["ip", "getent", "useradd"]);
    // Through the edge (which accepts on the port root bound for it), start
    // a server: the supervisor starts its tunnel for the core.
    let (srv, rampart, s, sid) = with_a_running_server("privsep", "198.18.20.0/24", 51820).await;
    let log = rampart.log();
    assert!(log.contains("privileges separated"), "says so at start:\n{log}");

    let supervisor = status(rampart.pid());
    assert_eq!(supervisor.uids[0], 0, "the supervisor stays root to start tunnels");
    let edge = rampart.child_pid("rampart-edge").expect("edge runs");
    let core = rampart.child_pid("rampart-core").expect("core runs");
    let tunnel = serving_tunnel(&rampart, 0);
    let e = assert_runs_as(edge, "rampart-edge");
    assert_eq!(e.seccomp, 2, "the edge runs under its seccomp deny-list");
    assert_runs_as(core, "rampart-core");
    let t = assert_runs_as(tunnel, "rampart-tunnel");
    assert_eq!(t.cap_bnd, 0, "the tunnel cannot regain anything: {t:?}");
    assert_eq!(t.seccomp, 2, "the tunnel runs under its seccomp filter");
    // Three distinct users.
    let ids = [user("rampart-edge").0, user("rampart-core").0, user("rampart-tunnel").0];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");
    // The tunnel really serves: its interface is up in the namespace.
    assert!(
        srv.links().iter().any(|l| l.starts_with("rp")),
        "the tunnel's interface exists: {:?}",
        srv.links()
    );

    // Who owns what in the data directory.
    let data = rampart.data_dir.clone();
    let (core_uid, core_gid) = user("rampart-core");
    let (edge_uid, edge_gid) = user("rampart-edge");
    assert_eq!(owner(&data), (core_uid, core_gid, 0o711));
    assert_eq!(owner(&data.join("core")), (core_uid, core_gid, 0o700));
    assert_eq!(owner(&data.join("edge")), (edge_uid, edge_gid, 0o700));
    assert_eq!(owner(&data.join("origin-secret")), (0, 0, 0o600));
    assert_eq!(owner(&data.join("host-key")).0, core_uid);

    // Stopping the server ends its tunnel (a child of the supervisor).
    let r = s
        .request(Method::POST, &format!("/api/v1/servers/{sid}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!harness::alive(tunnel), "the tunnel process is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the tunnel; .ci/run runs it"]
async fn the_core_can_only_ask_for_a_tunnel_and_killing_it_restarts_the_tunnel() {
    netns::require(&["ip"]);
    let (_srv, rampart, _s, _sid) = with_a_running_server("privsep2", "198.18.21.0/24", 51821).await;
    let first = serving_tunnel(&rampart, 0);

    // The core cannot signal the tunnel itself (another user)...
    let core = rampart.child_pid("rampart-core").unwrap();
    assert_ne!(status(core).uids[0], status(first).uids[0]);
    // ...but when the tunnel dies, the core notices through its control
    // socket and has the supervisor start a new one.
    harness::signal(first, rustix::process::Signal::KILL);
    let second = serving_tunnel(&rampart, first);
    assert_runs_as(second, "rampart-tunnel");

    // When the core dies, the supervisor restarts it, and the new core gets
    // its tunnels started again.
    harness::signal(core, rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(20);
    let new_core = loop {
        if let Some(new_core) = rampart.child_pid("rampart-core")
            && new_core != core
        {
            break new_core;
        }
        assert!(
            Instant::now() < deadline,
            "the core did not come back; log:\n{}",
            rampart.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_runs_as(new_core, "rampart-core");
    let third = serving_tunnel(&rampart, second);
    assert_runs_as(third, "rampart-tunnel");
}

/// Defence in depth: with its Landlock sandbox switched off, the edge's
/// user alone still cannot read the core's files or the origin secret's
/// file, nor signal the core. (Run as `rampart-edge`, the way the
/// supervisor runs it, with `--danger-no-sandbox`.)
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs root (runs the edge as its user); .ci/run runs it"]
async fn the_edge_user_alone_keeps_the_edge_out_of_the_cores_files() {
    use std::os::unix::process::CommandExt;
    netns::require(&["getent"]);
    let rampart = Rampart::start().await;
    let data = rampart.data_dir.clone();
    let core = rampart.child_pid("rampart-core").expect("core runs");
    let (uid, gid) = user("rampart-edge");
    // The edge needs a secret to start; give it a copy it may read.
    let tmp = harness::TempDir::new("rampart-edge-user");
    let secret = tmp.path().join("secret");
    std::fs::copy(data.join("origin-secret"), &secret).unwrap();
    std::os::unix::fs::chown(&secret, Some(uid), Some(gid)).unwrap();
    let targets = [
        data.join("core/rampart.db"),
        data.join("host-key"),
        data.join("origin-secret"),
        data.join("setup-token"),
    ];
    let mut spec: Vec<String> = targets.iter().map(|p| format!("read={}", p.display())).collect();
    spec.push(format!("signal={core}"));
    let out = Command::new(harness::bin("rampart-edge"))
        .args(["--http-addr", &format!("127.0.0.1:{}", harness::free_port())])
        .args(["--https-addr", &format!("127.0.0.1:{}", harness::free_port())])
        .args(["--core-addr", &rampart.ports.core.to_string()])
        .args(["--state-dir", tmp.path().join("state").to_str().unwrap()])
        .args(["--origin-secret-file", secret.to_str().unwrap()])
        .arg("--danger-no-sandbox")
        .args(["--probe-sandbox", &spec.join(",")])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), targets.len() + 1, "{results:?}");
    for r in &results {
        assert_eq!(r["denied"], true, "file modes and uids deny this: {r}");
    }
}
