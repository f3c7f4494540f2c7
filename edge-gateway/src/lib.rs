//! `rampart-edge`: the only Rampart process that faces the internet.
//!
//! It terminates TLS, answers ACME challenges and redirects on plain HTTP,
//! and runs every HTTPS request through the route table in `schemas` before
//! anything reaches the core. See [`gateway`] for the pipeline.
//!
//! # Layout
//! - [`acme`]: the ACME client, renewal, and the challenge answers.
//! - [`addr`]: socket addresses as text, cheaply.
//! - [`assets`]: the static pages embedded in the binary.
//! - [`config`]: flags and environment.
//! - [`server`]: accept loops and connection limits.
//! - [`gateway`]: the HTTPS request pipeline (match, validate, forward, filter).
//! - [`redirect`]: the plain-HTTP listener.
//! - [`forward`]: what crosses to the core, and how its answers come back.
//! - [`loopback`]: the lean HTTP/1.1 client for that hop.
//! - [`log`]: the log's filter and subscriber (the `logline` crate).
//! - [`respond`]: problem documents and the headers on every answer.
//! - [`throttle`]: per-address limits on sign-in and setup.
//! - [`tls`]: rustls configuration and the swappable certificate.
//! - [`secret`]: the origin secret that proves a request came through here.
//! - [`workers`]: the HTTPS worker threads, one event loop each.

pub mod acme;
pub mod addr;
pub mod assets;
pub mod config;
pub mod forward;
pub mod gateway;
pub mod log;
pub mod loopback;
pub mod redirect;
pub mod respond;
pub mod sandbox;
pub mod secret;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::acme::link::CoreLink;
use crate::acme::{Acme, AcmeOptions};
use crate::config::EdgeConfig;
use crate::forward::CoreClient;
use crate::gateway::Gateway;
use crate::redirect::Redirector;
use crate::secret::OriginSecret;
use crate::server::Limits;
use crate::throttle::Throttle;
use crate::tls::{CertFiles, CertStore, Origin};

/// An edge whose listeners are bound, ready to serve.
#[derive(Debug)]
pub struct BoundEdge {
    http: TcpListener,
    https: TcpListener,
    gateway: Arc<Gateway>,
    tls: Arc<rustls::ServerConfig>,
    acme: Acme,
    redirect_port: u16,
    limits: Limits,
}

impl BoundEdge {
    /// Loads or creates the certificate and binds both listeners.
    /// Binds the listeners unless `inherited` brings them already bound.
    pub async fn bind(
        config: &EdgeConfig,
        secret: &OriginSecret,
        inherited: Option<secret::Inherited>,
    ) -> anyhow::Result<Self> {
        let files = CertFiles::in_state_dir(&config.state_dir);
        let (key, origin) =
            tls::load_or_create(&files, &tls::self_signed_names()).context("setting up the TLS certificate")?;
        if origin == Origin::CreatedSelfSigned {
            warn!("************************************************************");
            warn!("* USING A SELF-SIGNED CERTIFICATE: browsers will warn and  *");
            warn!("* clients cannot verify this server. Configure ACME or     *");
            warn!("* install a certificate before exposing this host.         *");
            warn!("************************************************************");
            warn!(cert = %files.cert.display(), "self-signed certificate created");
        } else {
            info!(cert = %files.cert.display(), "certificate loaded");
        }
        let store = Arc::new(CertStore::new(key));
        let tls = tls::server_config(Arc::clone(&store)).context("building the TLS configuration")?;
        let core = CoreClient::new(config.core_addr, secret, config.core_timeout, config.core_batch);
        let acme = Acme::new(
            CoreLink::new(core.clone()),
            Arc::clone(&store),
            AcmeOptions {
                poll: config.acme_poll,
                retry_base: config.acme_retry,
                ca_root: config.acme_ca_root.clone(),
            },
        );
        // An ACME certificate from the core replaces the local one before
        // the first handshake; without one (or without the core) the local
        // one serves until the ACME task installs one.
        acme.load_at_start().await;

        let (http, https) = match inherited {
            Some(listeners) => (
                TcpListener::from_std(listeners.http).context("the inherited HTTP listener")?,
                TcpListener::from_std(listeners.https).context("the inherited HTTPS listener")?,
            ),
            None => (
                TcpListener::bind(config.http_addr)
                    .await
                    .with_context(|| format!("binding HTTP on {}", config.http_addr))?,
                TcpListener::bind(config.https_addr)
                    .await
                    .with_context(|| format!("binding HTTPS on {}", config.https_addr))?,
            ),
        };
        let https_port = https.local_addr()?.port();

        let gateway = Arc::new(Gateway::new(
            core,
            Throttle::new(config.login_attempts_per_minute),
            store,
            config.body_timeout,
        ));
        let limits = Limits {
            max_connections: config.max_connections,
            max_header_bytes: config.max_header_bytes,
            header_timeout: config.header_timeout,
            workers: config.workers,
        };
        Ok(Self {
            http,
            https,
            gateway,
            tls,
            acme,
            redirect_port: config.public_https_port.unwrap_or(https_port),
            limits,
        })
    }

    /// The bound plain-HTTP address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> std::io::Result<SocketAddr> {
        self.https.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains open connections.
    pub async fn serve(self, shutdown: CancellationToken) {
        info!(http = ?self.http.local_addr().ok(), https = ?self.https.local_addr().ok(), "edge listening");
        let redirector = Redirector::new(
            self.redirect_port,
            Some((self.acme.link().clone(), self.acme.http_answers())),
        );
        let (acme, on_failure) = (self.acme.clone(), shutdown.clone());
        let https = async {
            let served = server::serve_https(
                self.https,
                self.tls,
                Some(acme),
                &self.gateway,
                self.limits,
                on_failure.clone(),
            )
            .await;
            if let Err(e) = served {
                error!(error = %e, "could not start the HTTPS workers; stopping");
                on_failure.cancel();
            }
        };
        let http = server::serve_http(self.http, redirector, self.limits, shutdown.clone());
        let acme = self.acme.run(shutdown);
        tokio::join!(https, http, acme);
        info!("edge stopped");
    }
}
