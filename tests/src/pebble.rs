//! A private ACME CA for tests: pebble and pebble-challtestsrv (Debian
//! package `pebble`) on free loopback ports, so tests run in parallel.
//!
//! Follows the recipe in `shared/docs/TESTING.md`: a throwaway CA (openssl,
//! P-256) for pebble's own HTTPS listener, challtestsrv answering every name
//! with 127.0.0.1, `PEBBLE_VA_NOSLEEP=1`. Pebble's 5% nonce rejection stays
//! on unless a test turns it off. Missing binaries fail the test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

/// What to start pebble with.
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    /// The port pebble connects to for HTTP-01 (the edge's plain-HTTP port).
    pub http_port: u16,
    /// The port pebble connects to for TLS-ALPN-01 (the edge's HTTPS port).
    pub tls_port: u16,
    /// Validity of issued certificates, in seconds (pebble's default: 5 years).
    pub validity_secs: Option<u64>,
    /// Names pebble refuses to issue for.
    pub blocklist: Vec<String>,
}

/// A running pebble and challtestsrv.
#[derive(Debug)]
pub struct Pebble {
    dir: TempDir,
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
    /// pebble's ACME listener.
    pub listen: SocketAddr,
    /// pebble's management listener (roots, intermediates).
    pub management: SocketAddr,
    /// challtestsrv's management listener (`/set-txt`).
    pub challtestsrv_management: SocketAddr,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is openssl installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spawn(cmd: &mut Command, log: PathBuf, what: &str) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what}: {e}; install the Debian package `pebble` (scripts/test-all does)")
        })
}

impl Pebble {
    /// Starts both and waits until the directory answers.
    pub async fn start(options: PebbleOptions) -> Self {
        let dir = TempDir::new("rampart-pebble");
        let d = dir.path();
        std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        let p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        run(Command::new("openssl")
            .current_dir(d)
            .args(["req", "-x509"])
            .args(p256)
            .args([
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=rampart test pebble CA",
            ]));
        run(Command::new("openssl").current_dir(d).arg("req").args(p256).args([
            "-keyout",
            "localhost.key",
            "-out",
            "localhost.csr",
            "-subj",
            "/CN=localhost",
        ]));
        run(Command::new("openssl").current_dir(d).args([
            "x509",
            "-req",
            "-in",
            "localhost.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "localhost.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]));

        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let (listen, management) = (at(free_port()), at(free_port()));
        let (dns, cts_management) = (at(free_port()), at(free_port()));
        let mut config = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": d.join("localhost.pem"),
            "privateKey": d.join("localhost.key"),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "domainBlocklist": options.blocklist,
        });
        if let Some(v) = options.validity_secs {
            config["certificateValidityPeriod"] = v.into();
        }
        std::fs::write(
            d.join("pebble.json"),
            serde_json::json!({ "pebble": config }).to_string(),
        )
        .unwrap();

        let challtestsrv = spawn(
            Command::new("pebble-challtestsrv").args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &cts_management.to_string(),
            ]),
            d.join("challtestsrv.log"),
            "pebble-challtestsrv",
        );
        let mut this = Self {
            pebble: None,
            challtestsrv: Some(challtestsrv),
            listen,
            management,
            challtestsrv_management: cts_management,
            dir,
        };
        this.start_pebble(dns).await;
        this
    }

    async fn start_pebble(&mut self, dns: SocketAddr) {
        let d = self.dir.path();
        let child = spawn(
            Command::new("pebble")
                .args(["-config"])
                .arg(d.join("pebble.json"))
                .args(["-dnsserver", &dns.to_string(), "-strict=false"])
                .env("PEBBLE_VA_NOSLEEP", "1"),
            d.join("pebble.log"),
            "pebble",
        );
        self.pebble = Some(child);
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.directory()).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "pebble did not start; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The directory URL.
    pub fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.listen.port())
    }

    /// The CA that signed pebble's own listener: what an ACME client must
    /// trust to talk to it (`--acme-ca-root`).
    pub fn listener_ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client trusting pebble's listener.
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.listener_ca()).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("localhost", self.listen)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The root that issued certificates chain to (new at each start).
    pub async fn issuing_root(&self) -> String {
        let url = format!("https://localhost:{}/roots/0", self.management.port());
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(self.listener_ca()).unwrap()).unwrap())
            .resolve("localhost", self.management)
            .build()
            .unwrap();
        let r = client.get(url).send().await.unwrap();
        assert!(r.status().is_success());
        r.text().await.unwrap()
    }

    /// Stops pebble (the CA goes down); challtestsrv stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// pebble's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [self.pebble.take(), self.challtestsrv.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
