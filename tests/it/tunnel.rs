//! The whole product in one test: an operator creates a server, a user and
//! a device through the edge; the core starts the real `rampart-tunnel`;
//! stock wireguard-go, configured with exactly the profile the API hands
//! out, reaches the server and a network behind it. Then the core's side of
//! the life cycle: sessions, a peer removed live, a killed tunnel restarted
//! and rebuilt, a stopped server's interface gone.
//!
//! Three namespaces, all made here: `srv` (the core's tunnels; the veth
//! address is the public address), `cli` (wireguard-go), `lan` (a host
//! behind the server). Only 198.18.0.0/15 and 2001:db8::/32.

use std::time::{Duration, Instant};

use harness::Rampart;
use harness::api::Session;
use harness::netns::{self, Netns};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SRV_VETH: &str = "198.19.0.1";
const TUN_NET: &str = "198.19.10.0/24";
const SRV_TUN: &str = "198.19.10.1";
const SRV_TUN6: &str = "2001:db8:10::1";
const LAN_NET: &str = "198.19.20.0/24";
const LAN_HOST: &str = "198.19.20.2";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn created(s: &Session, path: &str, body: Value) -> Value {
    let (status, v) = s.send(Method::POST, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {v}");
    v
}

async fn bodiless(s: &Session, method: Method, path: &str) -> (StatusCode, Value) {
    let r = s.request(method, path).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// The profile's `[Interface]` addresses and `[Peer]` routes, and the
/// profile without the wg-quick-only lines (`Address`, `DNS`), which is
/// what `wg setconf` takes.
struct Profile {
    addresses: Vec<String>,
    allowed_ips: Vec<String>,
    wg_conf: String,
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_profile(text: &str) -> Profile {
    let mut p = Profile {
        addresses: Vec::new(),
        allowed_ips: Vec::new(),
        wg_conf: String::new(),
    };
    for line in text.lines() {
        let (key, value) = line.split_once(" = ").unwrap_or((line, ""));
        match key.trim() {
            "Address" => p.addresses = split_list(value),
            "DNS" => {}
            other => {
                if other == "AllowedIPs" {
                    p.allowed_ips = split_list(value);
                }
                p.wg_conf.push_str(line);
                p.wg_conf.push('\n');
            }
        }
    }
    p
}

/// The pid of the `rampart-tunnel` process, waiting up to 10 s: a child of
/// `rampart serve` (which starts tunnels for the unprivileged core), or of
/// the core with `--no-privsep`.
pub(crate) fn tunnel_pid(rampart: &Rampart) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let core = rampart.child_pid("rampart-core").expect("the core runs");
        if let Some((pid, _)) = harness::children_of(rampart.pid())
            .into_iter()
            .chain(harness::children_of(core))
            .find(|(_, comm)| comm == "rampart-tunnel")
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no tunnel process; log:\n{}", rampart.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The tunnel interfaces (`rp…`) in the server namespace.
fn tunnel_links(srv: &Netns) -> Vec<String> {
    srv.links().into_iter().filter(|l| l.starts_with("rp")).collect()
}

/// Waits until the sessions list shows `device` with a handshake and
/// traffic both ways; returns that entry.
async fn wait_for_session(s: &Session, sid: &str, device: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, sessions) = s.get(&format!("/api/v1/servers/{sid}/sessions")).await;
        assert_eq!(status, StatusCode::OK, "{sessions}");
        if let Some(item) = sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["device_id"] == device)
            && item["last_handshake"].is_string()
            && item["rx_bytes"].as_u64().unwrap() > 0
            && item["tx_bytes"].as_u64().unwrap() > 0
        {
            return item.clone();
        }
        assert!(Instant::now() < deadline, "no live session for {device}: {sessions}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `live_after_us` of every "tunnel peers changed" line of the log.
fn delta_latencies(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("tunnel peers changed"))
        .filter_map(|l| l.split("live_after_us=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, wireguard-go and wg; .ci/run runs it"]
async fn a_wireguard_go_client_uses_its_profile_through_the_core_driven_tunnel() {
    netns::require(&["ip", "ping", "wg", "wireguard-go", "sysctl"]);
    let srv = Netns::new("srv");
    let mut cli = Netns::new("cli");
    let lan = Netns::new("lan");
    netns::veth(&srv, "v-cli", &format!("{SRV_VETH}/30"), &cli, "v-srv", "198.19.0.2/30");
    netns::veth(
        &srv,
        "v-lan",
        "198.19.20.1/24",
        &lan,
        "v-srv",
        &format!("{LAN_HOST}/24"),
    );
    srv.forward();
    lan.run(&["ip", "route", "add", TUN_NET, "via", "198.19.20.1"]);

    let srv_name = srv.name().to_owned();
    let with_tunnels = move |cmd: &mut std::process::Command| {
        cmd.env_remove("RAMPART_NO_TUNNELS")
            .env("RAMPART_TUNNEL_NETNS", &srv_name);
    };
    let mut first_run = Rampart::start_with(with_tunnels.clone()).await;
    let rampart = &first_run;
    let s = Session::admin(rampart).await;

    // The operator's side, all through the edge.
    let (status, settings) = s
        .send(Method::PATCH, "/api/v1/settings", json!({"public_address": SRV_VETH}))
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let server = created(
        &s,
        "/api/v1/servers",
        json!({"name": "hq", "network": TUN_NET, "network6": "2001:db8:10::/64", "port": 51820,
               "routes": [TUN_NET, LAN_NET, "2001:db8:10::/64"]}),
    )
    .await;
    let sid = id(&server);
    let org = id(&created(&s, "/api/v1/orgs", json!({"name": "Acme"})).await);
    let user = id(&created(&s, &format!("/api/v1/orgs/{org}/users"), json!({"name": "Alice"})).await);
    let device = created(&s, &format!("/api/v1/users/{user}/devices"), json!({"name": "laptop"})).await;
    let did = id(&device);
    let (status, attached) = bodiless(&s, Method::PUT, &format!("/api/v1/servers/{sid}/orgs/{org}")).await;
    assert_eq!(status, StatusCode::OK, "{attached}");
    let (status, started) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{sid}/start")).await;
    assert_eq!(
        (status, &started["state"]),
        (StatusCode::OK, &json!("running")),
        "{started}"
    );
    assert_eq!(
        tunnel_links(&srv).len(),
        1,
        "one tunnel interface in the server namespace"
    );

    // The device's side: exactly the profile it is given.
    let r = s
        .request(Method::GET, &format!("/api/v1/devices/{did}/config?server={sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let profile = parse_profile(&r.text().await.unwrap());
    assert!(
        profile.wg_conf.contains(&format!("Endpoint = {SRV_VETH}:51820")),
        "{}",
        profile.wg_conf
    );
    assert!(profile.allowed_ips.contains(&LAN_NET.to_owned()));
    let dir = harness::TempDir::new("rampart-wg");
    let conf = dir.path().join("wgc.conf");
    std::fs::write(&conf, &profile.wg_conf).unwrap();
    cli.spawn(&["wireguard-go", "-f", "wgc"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli.links().iter().any(|l| l == "wgc") {
        assert!(Instant::now() < deadline, "wireguard-go made no interface");
        std::thread::sleep(Duration::from_millis(50));
    }
    cli.run(&["wg", "setconf", "wgc", conf.to_str().unwrap()]);
    for address in &profile.addresses {
        cli.run(&["ip", "addr", "add", address, "dev", "wgc"]);
    }
    cli.run(&["ip", "link", "set", "wgc", "up"]);
    for route in &profile.allowed_ips {
        cli.run(&["ip", "route", "replace", route, "dev", "wgc"]);
    }

    assert!(
        cli.ping_within(SRV_TUN, Duration::from_secs(15)),
        "ping the server's tunnel address; log:\n{}",
        rampart.log()
    );
    assert!(cli.ping_within(SRV_TUN6, Duration::from_secs(5)), "IPv6 ping");
    assert!(
        cli.ping_within(LAN_HOST, Duration::from_secs(5)),
        "ping a host routed through the server"
    );

    // Sessions: the device, its address, a fresh handshake, bytes.
    let session = wait_for_session(&s, &sid, &did).await;
    assert_eq!(session["user_id"], user);
    assert_eq!(
        Some(session["address"].as_str().unwrap()),
        profile.addresses[0].strip_suffix("/32")
    );
    assert_eq!(
        session["endpoint"].as_str().unwrap().split(':').next(),
        Some("198.19.0.2")
    );
    let handshake: jiff::Timestamp = session["last_handshake"].as_str().unwrap().parse().unwrap();
    assert!(
        jiff::Timestamp::now().duration_since(handshake).as_secs() < 60,
        "{session}"
    );

    // Live changes: more devices come and go while the tunnel runs; the
    // core logs how long each took to reach the tunnel.
    let mut extra = Vec::new();
    for n in 0..40 {
        extra.push(id(&created(
            &s,
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": format!("extra {n}")}),
        )
        .await));
    }
    for e in &extra {
        assert_eq!(
            bodiless(&s, Method::DELETE, &format!("/api/v1/devices/{e}")).await.0,
            StatusCode::NO_CONTENT
        );
    }

    // Kill the tunnel: the core starts another, rebuilds it from the
    // database, and traffic comes back.
    let first = tunnel_pid(rampart);
    harness::signal(first, rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        let pid = tunnel_pid(rampart);
        if pid != first {
            break pid;
        }
        assert!(Instant::now() < deadline, "the tunnel was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        cli.ping_within(SRV_TUN, Duration::from_secs(40)),
        "traffic after the restart; log:\n{}",
        rampart.log()
    );
    assert!(harness::alive(second));
    assert!(rampart.log().contains("tunnel failed; it will be restarted"));

    // The core stops its tunnels when it stops, and starts those whose
    // state is running when it starts again, rebuilt from the database.
    let (data_dir, ports, log) = (rampart.data_dir.clone(), rampart.ports, rampart.log_path());
    first_run.stop();
    assert!(tunnel_links(&srv).is_empty(), "the interface goes with the core");
    let second_run = Rampart::restart_with(&data_dir, ports, log, with_tunnels).await;
    let rampart = &second_run;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tunnel_links(&srv).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the running server was not started with the core"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cli.ping_within(SRV_TUN, Duration::from_secs(40)),
        "traffic after the core's restart; log:\n{}",
        rampart.log()
    );
    let second = tunnel_pid(rampart);

    // Disable the user: their devices' peers go; enable: they come back.
    let (status, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{user}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cli.ping_fails_within(SRV_TUN, Duration::from_secs(5)),
        "a disabled user's ping stops"
    );
    assert!(!cli.ping(SRV_TUN));
    let (status, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{user}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cli.ping_within(SRV_TUN, Duration::from_secs(40)),
        "an enabled user's device is a peer again"
    );

    // Delete the device: the peer goes, and so does its traffic.
    assert_eq!(
        bodiless(&s, Method::DELETE, &format!("/api/v1/devices/{did}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(cli.ping_fails_within(SRV_TUN, Duration::from_secs(5)), "the ping stops");
    for _ in 0..3 {
        assert!(!cli.ping(SRV_TUN), "no traffic once the device is deleted");
    }

    // Stop: the process and its interface go.
    let (status, stopped) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{sid}/stop")).await;
    assert_eq!((status, &stopped["state"]), (StatusCode::OK, &json!("stopped")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tunnel_links(&srv).is_empty() {
        assert!(Instant::now() < deadline, "interface still there: {:?}", srv.links());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!harness::alive(second));
    let (_, sessions) = s.get(&format!("/api/v1/servers/{sid}/sessions")).await;
    assert_eq!(sessions["items"], json!([]));

    // The numbers, reported rather than asserted (a shared 2-core machine).
    // One log file across both runs.
    let mut lat = delta_latencies(&rampart.log());
    lat.sort_unstable();
    assert!(lat.len() >= 80, "one logged delta per device change: {}", lat.len());
    eprintln!(
        "API change -> peer live (core log, {} deltas): p50 {} us, p99 {} us, max {} us",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

/// The value of `field=` on every log line containing `message`.
fn logged(log: &str, message: &str, field: &str) -> Vec<u64> {
    let key = format!("{field}=");
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| l.split(key.as_str()).nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Many peers: a change still costs one lookup, not a rescan. Reports the
/// numbers (devices through the API, attach of all of them at once, single
/// changes with all of them present, a rebuild after a crash); asserts
/// only that everything arrived. `RAMPART_SCALE_DEVICES` (default 2000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, wireguard-go and wg; .ci/run runs it"]
async fn peer_changes_stay_fast_with_many_peers() {
    netns::require(&["ip"]);
    let devices: usize = std::env::var("RAMPART_SCALE_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let srv = Netns::new("scale");
    let srv_name = srv.name().to_owned();
    let rampart = Rampart::start_with(move |cmd| {
        cmd.env_remove("RAMPART_NO_TUNNELS")
            .env("RAMPART_TUNNEL_NETNS", &srv_name);
    })
    .await;
    let s = Session::admin(&rampart).await;
    let server = created(
        &s,
        "/api/v1/servers",
        json!({"name": "big", "network": "198.18.0.0/15", "port": 51820}),
    )
    .await;
    let sid = id(&server);
    let org = id(&created(&s, "/api/v1/orgs", json!({"name": "Big"})).await);
    let user = id(&created(&s, &format!("/api/v1/orgs/{org}/users"), json!({"name": "Many"})).await);

    // Devices with their own keys, eight requests at a time.
    let began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (s, user) = (s.clone(), user.clone());
        tasks.spawn(async move {
            for n in (worker..devices).step_by(8) {
                let key =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, rand::random::<[u8; 32]>());
                created(
                    &s,
                    &format!("/api/v1/users/{user}/devices"),
                    json!({"name": format!("d{n}"), "public_key": key}),
                )
                .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let created_in = began.elapsed();

    let (status, _) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{sid}/start")).await;
    assert_eq!(status, StatusCode::OK);
    let began = Instant::now();
    let (status, _) = bodiless(&s, Method::PUT, &format!("/api/v1/servers/{sid}/orgs/{org}")).await;
    assert_eq!(status, StatusCode::OK);
    let attach_answered = began.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let attach_live = loop {
        let upserted: u64 = logged(&rampart.log(), "tunnel peers changed", "upserted").iter().sum();
        if upserted as usize >= devices {
            break began.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {upserted} of {devices} peers reached the tunnel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let before = logged(&rampart.log(), "tunnel peers changed", "live_after_us").len();

    // Single changes with every peer present.
    for n in 0..50 {
        let d = id(&created(
            &s,
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": format!("x{n}")}),
        )
        .await);
        assert_eq!(
            bodiless(&s, Method::DELETE, &format!("/api/v1/devices/{d}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
    // The last delete's delta is logged just after its answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let single = loop {
        let all = logged(&rampart.log(), "tunnel peers changed", "live_after_us");
        if all.len() >= before + 100 {
            break all[before..].to_vec();
        }
        assert!(Instant::now() < deadline, "{} single deltas logged", all.len() - before);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut single = single;
    single.sort_unstable();

    // A crash: everything is rebuilt from the database.
    let loads_before = logged(&rampart.log(), "tunnel loaded from the database", "elapsed_ms").len();
    harness::signal(tunnel_pid(&rampart), rustix::process::Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (reload_ms, reload_peers) = loop {
        let log = rampart.log();
        let loads = logged(&log, "tunnel loaded from the database", "elapsed_ms");
        if loads.len() > loads_before {
            let peers = logged(&log, "tunnel loaded from the database", "peers");
            break (loads[loads.len() - 1], peers[peers.len() - 1]);
        }
        assert!(Instant::now() < deadline, "no rebuild after the crash");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reload_peers as usize, devices);

    eprintln!(
        "{devices} devices: created through the API in {:.1} s ({:.0}/s); attach answered in {} ms, all peers live {} ms after the request; \
         single change with {devices} peers present (100 deltas): p50 {} us, p99 {} us, max {} us; rebuild after kill -9: {reload_ms} ms",
        created_in.as_secs_f64(),
        devices as f64 / created_in.as_secs_f64(),
        attach_answered.as_millis(),
        attach_live.as_millis(),
        percentile(&single, 0.5),
        percentile(&single, 0.99),
        single[single.len() - 1],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, wireguard-go and wg; .ci/run runs it"]
async fn a_tunnel_that_cannot_start_is_an_error_with_its_reason() {
    netns::require(&["ip", "python3", "ss"]);
    let mut srv = Netns::new("busy");
    let srv_name = srv.name().to_owned();
    // Another program holds the server's UDP port in the tunnel's namespace.
    srv.spawn(&[
        "python3",
        "-c",
        "import socket, time\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::', 51820))\n\
         time.sleep(120)",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.run(&["ss", "-Hunl", "sport = :51820"]).contains("51820") {
        assert!(Instant::now() < deadline, "the port holder did not bind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rampart = Rampart::start_with(move |cmd| {
        cmd.env_remove("RAMPART_NO_TUNNELS")
            .env("RAMPART_TUNNEL_NETNS", &srv_name);
    })
    .await;
    let s = Session::admin(&rampart).await;
    let busy = id(&created(
        &s,
        "/api/v1/servers",
        json!({"name": "busy", "network": "198.18.10.0/24", "port": 51820}),
    )
    .await);
    let free = id(&created(
        &s,
        "/api/v1/servers",
        json!({"name": "free", "network": "198.18.11.0/24", "port": 51821}),
    )
    .await);

    let (status, problem) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{busy}/start")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("51820") && detail.contains("in use"),
        "the tunnel's own reason: {problem}"
    );
    assert!(
        tunnel_links(&srv).is_empty(),
        "no interface is left behind: {:?}",
        srv.links()
    );

    // Another server is not held up by it.
    let (status, body) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{free}/start")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Stopping gives up cleanly.
    let (status, body) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{busy}/stop")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, server) = bodiless(&s, Method::GET, &format!("/api/v1/servers/{busy}")).await;
    assert_eq!(server["state"], "stopped", "{server}");
    assert_eq!(tunnel_links(&srv).len(), 1, "only the free server's interface");
}
