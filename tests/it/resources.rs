//! Users, devices, servers, static addresses, profiles and key links, end
//! to end through the edge: what an operator does, and what the device and
//! its user get.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use harness::Rampart;
use harness::api::{ADMIN, PASSWORD, Session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// GET returning status, content type and text.
async fn text(s: &Session, path: &str) -> (StatusCode, String, String) {
    let r = s.request(Method::GET, path).send().await.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), ct, r.text().await.unwrap())
}

/// A state change without a body, returning status and JSON.
async fn bodiless(s: &Session, method: Method, path: &str) -> (StatusCode, Value) {
    let r = s.request(method, path).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

fn line<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(" = ")))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Everything the core wrote to disk: the database and its write-ahead log.
fn database_bytes(rampart: &Rampart) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["rampart.db", "rampart.db-wal"] {
        if let Ok(bytes) = std::fs::read(rampart.data_dir.join("core").join(name)) {
            all.extend(bytes);
        }
    }
    assert!(!all.is_empty());
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The organization, user, server, two devices (one generated key, one
/// brought) and the attachment every test here starts from.
struct World {
    org: String,
    user: String,
    server: Value,
    laptop: Value,
    phone: Value,
}

async fn world(s: &Session) -> World {
    let (status, org) = s.send(Method::POST, "/api/v1/orgs", json!({"name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let org = id(&org);
    let (status, user) = s
        .send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/users"),
            json!({"name": "Alice", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!((&user["org_id"], &user["disabled"]), (&json!(org), &json!(false)));
    let user = id(&user);
    let (status, server) = s
        .send(
            Method::POST,
            "/api/v1/servers",
            json!({"name": "hq", "network": "198.18.77.0/24", "network6": "2001:db8:77::/64",
                   "port": 51820, "dns": ["198.18.77.1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{server}");
    assert_eq!(server["state"], "stopped");
    assert_eq!(server["public_key"].as_str().unwrap().len(), 44);

    let (status, laptop) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{laptop}");
    assert_eq!(laptop["private_key"].as_str().unwrap().len(), 44);
    let own = STANDARD.encode(rand::random::<[u8; 32]>());
    let (status, phone) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{user}/devices"),
            json!({"name": "phone", "public_key": own}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{phone}");
    assert!(phone.get("private_key").is_none(), "{phone}");
    assert_eq!(phone["public_key"], own);

    let sid = id(&server);
    let (status, attached) = bodiless(s, Method::PUT, &format!("/api/v1/servers/{sid}/orgs/{org}")).await;
    assert_eq!(status, StatusCode::OK, "{attached}");
    assert_eq!(attached["orgs"], json!([org]));
    World {
        org,
        user,
        server,
        laptop,
        phone,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_get_static_addresses_and_profiles_through_the_edge() {
    let mut rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let w = world(&s).await;
    let sid = id(&w.server);
    let (laptop, phone) = (id(&w.laptop), id(&w.phone));

    // Users: read, search by name and by email, change.
    let (status, found) = s.get(&format!("/api/v1/orgs/{}/users?search=ALI", w.org)).await;
    assert_eq!((status, found["items"].as_array().unwrap().len()), (StatusCode::OK, 1));
    let (_, found) = s.get(&format!("/api/v1/orgs/{}/users?search=example.com", w.org)).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (_, none) = s.get(&format!("/api/v1/orgs/{}/users?search=bob", w.org)).await;
    assert_eq!(none["items"], json!([]));
    let (status, changed) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{}", w.user),
            json!({"name": "Alice A."}),
        )
        .await;
    assert_eq!((status, &changed["name"]), (StatusCode::OK, &json!("Alice A.")));

    // A public key is one peer's only: a second device with it is refused.
    let (status, dup) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/devices", w.user),
            json!({"name": "clone", "public_key": w.phone["public_key"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");
    assert_eq!(dup["errors"][0]["field"], "public_key");

    // The generated private key is shown once: never in a read.
    let (status, got) = s.get(&format!("/api/v1/devices/{laptop}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(got.get("private_key").is_none(), "{got}");
    assert_eq!(got["key_generated"], true);
    assert_eq!(
        got["addresses"],
        json!([{"server_id": sid, "address": "198.18.77.2", "address6": "2001:db8:77::2"}])
    );
    let (_, list) = s.get(&format!("/api/v1/users/{}/devices", w.user)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // The generated key's profile: every line in place.
    let (status, ct, config) = text(&s, &format!("/api/v1/devices/{laptop}/config?server={sid}")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(ct, "text/plain; charset=utf-8");
    let private = w.laptop["private_key"].as_str().unwrap();
    assert_eq!(line(&config, "PrivateKey"), Some(private));
    assert_eq!(line(&config, "Address"), Some("198.18.77.2/32, 2001:db8:77::2/128"));
    assert_eq!(line(&config, "DNS"), Some("198.18.77.1"));
    assert_eq!(line(&config, "PublicKey"), w.server["public_key"].as_str());
    assert_eq!(line(&config, "AllowedIPs"), Some("198.18.77.0/24, 2001:db8:77::/64"));
    assert!(line(&config, "Endpoint").unwrap().ends_with(":51820"), "{config}");
    assert_eq!(line(&config, "PersistentKeepalive"), Some("25"));
    let psk = line(&config, "PresharedKey").unwrap().to_owned();
    assert_eq!(psk.len(), 44);

    // The brought key's profile has no private key; its own address.
    let (_, _, phone_config) = text(&s, &format!("/api/v1/devices/{phone}/config?server={sid}")).await;
    assert_eq!(line(&phone_config, "PrivateKey"), None);
    assert_eq!(
        line(&phone_config, "Address"),
        Some("198.18.77.3/32, 2001:db8:77::3/128")
    );
    assert_ne!(line(&phone_config, "PresharedKey"), Some(psk.as_str()));

    // The QR code is an SVG.
    let (status, ct, svg) = text(&s, &format!("/api/v1/devices/{laptop}/qr?server={sid}")).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "image/svg+xml"));
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    // Secrets are sealed on disk: neither the private key, nor the
    // preshared key, in base64 or raw, is in the database.
    let disk = database_bytes(&rampart);
    for secret in [private, psk.as_str()] {
        assert!(!contains(&disk, secret.as_bytes()), "a key is stored in clear (base64)");
        let raw = STANDARD.decode(secret).unwrap();
        assert!(!contains(&disk, &raw), "a key is stored in clear (raw)");
    }

    // Start and stop change only the state; the addresses stay.
    let (status, started) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{sid}/start")).await;
    assert_eq!((status, &started["state"]), (StatusCode::OK, &json!("running")));
    let (_, stopped) = bodiless(&s, Method::POST, &format!("/api/v1/servers/{sid}/stop")).await;
    assert_eq!(stopped["state"], "stopped");

    // A network cannot change under devices that hold addresses on it.
    let (status, refused) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/servers/{sid}"),
            json!({"network": "198.18.78.0/24"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "network");

    // Addresses survive a restart.
    assert!(rampart.stop().success());
    let again = Rampart::restart_on(&rampart.data_dir, rampart.ports, rampart.log_path()).await;
    let s = Session::login(&again, ADMIN, PASSWORD).await;
    let (_, _, after) = text(&s, &format!("/api/v1/devices/{laptop}/config?server={sid}")).await;
    assert_eq!(after, config, "the profile changed across a restart");

    // A device added later gets the next address at once.
    let (_, tablet) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/devices", w.user),
            json!({"name": "tablet"}),
        )
        .await;
    assert_eq!(tablet["addresses"][0]["address"], "198.18.77.4", "{tablet}");
    let (_, _, tablet_config) = text(&s, &format!("/api/v1/devices/{}/config?server={sid}", id(&tablet))).await;
    assert_eq!(
        line(&tablet_config, "Address"),
        Some("198.18.77.4/32, 2001:db8:77::4/128")
    );

    // Deleting a device frees its address for the next one.
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/v1/devices/{phone}")).await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = s.get(&format!("/api/v1/devices/{phone}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, watch) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/devices", w.user),
            json!({"name": "watch"}),
        )
        .await;
    let (_, _, watch_config) = text(&s, &format!("/api/v1/devices/{}/config?server={sid}", id(&watch))).await;
    assert_eq!(
        line(&watch_config, "Address"),
        Some("198.18.77.3/32, 2001:db8:77::3/128")
    );

    // Detached: no profile; then the network may change.
    let (status, detached) = bodiless(&s, Method::DELETE, &format!("/api/v1/servers/{sid}/orgs/{}", w.org)).await;
    assert_eq!((status, &detached["orgs"]), (StatusCode::OK, &json!([])));
    let (status, _, body) = text(&s, &format!("/api/v1/devices/{laptop}/config?server={sid}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("not attached"), "{body}");
    let (status, moved) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/servers/{sid}"),
            json!({"network": "198.18.78.0/24"}),
        )
        .await;
    assert_eq!((status, &moved["network"]), (StatusCode::OK, &json!("198.18.78.0/24")));

    // Every change was audited.
    let (_, audit) = s.get("/api/v1/audit?limit=500").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.create",
        "device.create",
        "server.create",
        "server.attach",
        "server.detach",
        "device.delete",
    ] {
        assert!(actions.contains(&action), "{action} not audited: {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_link_shows_the_profiles_then_expires() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let w = world(&s).await;

    let (status, link) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/links", w.user),
            json!({"expires_in": 3600, "max_uses": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let token = url.rsplit("/k/").next().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    // Only the token's digest is stored.
    assert!(!contains(&database_bytes(&rampart), token.as_bytes()));

    // Public: no session. Two uses, then 410.
    let anonymous = rampart.client();
    for _ in 0..2 {
        let r = anonymous.get(rampart.url(&format!("/k/{token}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("Alice"), "{page}");
        assert!(page.contains(w.laptop["private_key"].as_str().unwrap()));
        assert!(page.contains(&format!("PublicKey = {}", w.server["public_key"].as_str().unwrap())));
        assert_eq!(page.matches("<svg").count(), 2, "one QR per device");
        assert_eq!(page.matches("[Interface]").count(), 2);
        for forbidden in ["<script", "style=", "<style", "javascript:"] {
            assert!(!page.contains(forbidden), "{forbidden} in the page");
        }
    }
    let r = anonymous.get(rampart.url(&format!("/k/{token}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // An unknown token is a 404; a malformed one never reaches the core.
    let r = anonymous
        .get(rampart.url(&format!("/k/{}", "A".repeat(43))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = anonymous.get(rampart.url("/k/short")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Opens and refusals are in the audit log, without the token.
    let (_, audit) = s.get("/api/v1/audit?action=link.open&limit=500").await;
    let entries = audit["items"].as_array().unwrap();
    let outcomes: Vec<&str> = entries.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 2, "{outcomes:?}");
    assert!(outcomes.contains(&"denied"));
    assert!(!audit.to_string().contains(&token));

    // A disabled user's link stops working.
    let (_, link) = s
        .send(
            Method::POST,
            &format!("/api/v1/users/{}/links", w.user),
            json!({"expires_in": 60, "max_uses": 1}),
        )
        .await;
    let token = link["url"].as_str().unwrap().rsplit("/k/").next().unwrap().to_owned();
    let (status, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{}", w.user),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = anonymous.get(rampart.url(&format!("/k/{token}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
}

/// wg-quick accepts the profile, and the generated private key belongs to
/// the public key the API reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs wireguard-tools; .ci/run runs it"]
async fn wg_quick_accepts_the_profile() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let w = world(&s).await;
    let (_, _, config) = text(
        &s,
        &format!("/api/v1/devices/{}/config?server={}", id(&w.laptop), id(&w.server)),
    )
    .await;
    let dir = harness::TempDir::new("rampart-wg");
    let file = dir.path().join("wg0.conf");
    std::fs::write(&file, &config).unwrap();
    let out = Command::new("wg-quick")
        .arg("strip")
        .arg(&file)
        .output()
        .expect("wg-quick");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stripped = String::from_utf8(out.stdout).unwrap();
    for key in ["PrivateKey", "PresharedKey", "PublicKey", "Endpoint", "AllowedIPs"] {
        assert!(stripped.contains(key), "{key} missing:\n{stripped}");
    }
    assert!(!stripped.contains("Address"), "wg-quick strip keeps only wg keys");

    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg");
    let private = w.laptop["private_key"].as_str().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{private}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), w.laptop["public_key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_address_setting_is_the_profiles_endpoint() {
    let rampart = Rampart::start().await;
    let s = Session::admin(&rampart).await;
    let w = world(&s).await;
    let config_path = format!("/api/v1/devices/{}/config?server={}", id(&w.laptop), id(&w.server));

    let (status, settings) = s
        .send(
            Method::PATCH,
            "/api/v1/settings",
            json!({"public_address": "vpn.example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["public_address"], "vpn.example.com");
    let (_, _, config) = text(&s, &config_path).await;
    assert_eq!(line(&config, "Endpoint"), Some("vpn.example.com:51820"), "{config}");

    let (status, _) = s
        .send(
            Method::PATCH,
            "/api/v1/settings",
            json!({"public_address": "2001:db8::1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, config) = text(&s, &config_path).await;
    assert_eq!(line(&config, "Endpoint"), Some("[2001:db8::1]:51820"), "{config}");

    for bad in [
        "vpn.example.com:443",
        "https://vpn.example.com",
        "-bad.example",
        "a b",
        "",
    ] {
        let (status, problem) = s
            .send(Method::PATCH, "/api/v1/settings", json!({"public_address": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "public_address", "{bad}: {problem}");
    }
    let (_, settings) = s.get("/api/v1/settings").await;
    assert_eq!(
        settings["public_address"], "2001:db8::1",
        "refused changes change nothing"
    );
    let (_, audit) = s.get("/api/v1/audit?action=setting.update").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
}
