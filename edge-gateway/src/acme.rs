//! ACME in the edge: the client that gets and renews the certificate, and
//! the challenge answers the listeners serve.
//!
//! The edge runs the ACME client (it is the process that may reach the CA);
//! the core keeps all state in the database, reached over loopback with the
//! origin proof (`/internal/acme/...`, see [`link`]). So any host of a
//! cluster can answer a challenge for an order another host started, and
//! every host presents the same certificate. The protocol is described in
//! `docs/design.md`.
//!
//! [`run`] polls the core every few seconds for the configuration, a
//! pending renewal request and the stored certificate's serial; it installs
//! a certificate another host (or an earlier run) stored, and issues a new
//! one when none matches the configured names, at two thirds of the
//! lifetime (jittered) or inside the CA's suggested window where the CA
//! offers ARI (RFC 9773), or when asked. A failure is retried with
//! exponential backoff; the certificate in use stays until a new one is in.
//!
//! # Layout
//! - [`link`]: typed calls to the core.
//! - [`issue`]: one issuance with instant-acme.
//! - [`certs`]: PEM and X.509 helpers, the TLS-ALPN-01 certificate.
//! - [`schedule`]: renewal time and backoff.

pub mod certs;
pub mod issue;
pub mod link;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use schemas::acme::ChallengeKind;
use schemas::acme::internal::{AcmeConfig, AcmeState, AttemptReport, CertMeta};
use tokio_util::sync::CancellationToken;

use crate::tls::CertStore;
use link::CoreLink;

/// The edge's ACME options (from its flags).
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    /// How often to ask the core for news.
    pub poll: Duration,
    /// The first wait after a failed attempt; doubles per failure.
    pub retry_base: Duration,
    /// A PEM root to trust for the CA's directory (test CAs).
    pub ca_root: Option<PathBuf>,
}

/// Formats an error with its sources, for status messages and logs.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// How long an HTTP-01 answer (or its absence) fetched from the core is
/// reused: the CA asks a few times within seconds, from several places.
const HTTP_CACHE: Duration = Duration::from_secs(2);

/// HTTP-01 answers: this host's own (kept while its order runs) and ones
/// fetched from the core for orders other hosts started (kept briefly).
#[derive(Debug, Default)]
pub struct HttpAnswers {
    entries: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

/// The most cached answers: lookups of made-up tokens on port 80 must not
/// grow memory without bound.
const HTTP_CACHE_MAX: usize = 4096;

impl HttpAnswers {
    fn insert(&self, token: &str, answer: Option<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= HTTP_CACHE_MAX {
            // Absences first: they are only a cache; then anything old.
            entries.retain(|_, (answer, at)| answer.is_some() && at.elapsed() < Duration::from_secs(600));
        }
        if entries.len() >= HTTP_CACHE_MAX {
            entries.clear();
        }
        entries.insert(token.to_owned(), (answer, Instant::now()));
    }

    /// The key authorization for `token`, asking the core unless a recent
    /// answer is at hand. `None`: no such challenge (or the core is down).
    pub async fn lookup(&self, link: &CoreLink, token: &str) -> Option<String> {
        if !schemas::acme::internal::valid_challenge_key(token) {
            return None;
        }
        {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            // Tokens are single-use and unguessable, so a known answer
            // stays right; a known absence is rechecked after a moment.
            if let Some((answer, at)) = entries.get(token)
                && (answer.is_some() || at.elapsed() < HTTP_CACHE)
            {
                return answer.clone();
            }
        }
        let answer = match link.challenge(ChallengeKind::Http01, token).await {
            Ok(found) => found.map(|a| a.value),
            Err(e) => {
                tracing::warn!(error = %chain(&e), "ACME: the core did not answer an HTTP-01 lookup");
                None
            }
        };
        self.insert(token, answer.clone());
        answer
    }
}

/// What the ACME task shares with the listeners.
#[derive(Debug, Clone)]
pub struct Acme {
    /// This process's lease holder id.
    holder: String,
    link: CoreLink,
    store: Arc<CertStore>,
    http: Arc<HttpAnswers>,
    options: AcmeOptions,
}

/// What the ACME task remembers between polls.
#[derive(Debug, Default)]
struct RunState {
    /// The ACME certificate presented now.
    loaded: Option<Loaded>,
    /// Consecutive failed attempts.
    failures: u32,
    /// No unforced attempt before this.
    next_try: Option<Instant>,
    /// The settings of the last poll.
    config: Option<AcmeConfig>,
}

/// The certificate the edge presents from the core's store.
#[derive(Debug, Clone)]
struct Loaded {
    meta: CertMeta,
    chain_pem: String,
    renew_at: Timestamp,
    /// When to ask the CA for its renewal window (ARI) next; `None`: the CA
    /// does not offer ARI.
    ari_next: Option<Instant>,
}

/// How long one order may hold the lease: longer than an order takes
/// (account, challenges, validation and issuance each time out sooner).
const LEASE_SECS: u32 = 600;

/// How often the CA's renewal window is asked for again (RFC 9773 suggests
/// following Retry-After; a few hours is within what CAs send).
const ARI_RECHECK: Duration = Duration::from_secs(6 * 3600);

impl Acme {
    /// ACME for the edge whose certificate is in `store`.
    pub fn new(link: CoreLink, store: Arc<CertStore>, options: AcmeOptions) -> Self {
        Self {
            holder: uuid::Uuid::new_v4().simple().to_string(),
            link,
            store,
            http: Arc::new(HttpAnswers::default()),
            options,
        }
    }

    /// The HTTP-01 answers, for the plain-HTTP listener.
    pub fn http_answers(&self) -> Arc<HttpAnswers> {
        Arc::clone(&self.http)
    }

    /// The link to the core.
    pub fn link(&self) -> &CoreLink {
        &self.link
    }

    /// Fetches the TLS-ALPN-01 certificate for `domain` from the core into
    /// the certificate store, unless it is there already: the CA may
    /// connect to any host of a cluster.
    pub async fn prepare_alpn(&self, domain: &str) {
        if self.store.challenge(domain).is_some() || !schemas::acme::internal::valid_challenge_key(domain) {
            return;
        }
        match self.link.challenge(ChallengeKind::TlsAlpn01, domain).await {
            Ok(Some(answer)) => match answer
                .key_pem
                .as_deref()
                .map(|key| certs::challenge_key(&answer.value, key))
            {
                Some(Ok(key)) => self.store.set_challenge(domain, key),
                Some(Err(e)) => {
                    tracing::warn!(error = %chain(&e), "ACME: a stored TLS-ALPN-01 certificate is unusable")
                }
                None => {}
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %chain(&e), "ACME: the core did not answer a TLS-ALPN-01 lookup"),
        }
    }

    /// Runs until `shutdown`: polls, installs, issues, renews.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut run = RunState::default();
        let mut core_down_logged = false;
        loop {
            match self.link.state().await {
                Ok(state) => {
                    core_down_logged = false;
                    self.tick(state, &mut run).await;
                }
                Err(e) if !core_down_logged => {
                    core_down_logged = true;
                    tracing::warn!(error = %chain(&e), "ACME: the core does not answer; keeping the current certificate");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.options.poll) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn tick(&self, state: AcmeState, run: &mut RunState) {
        let RunState {
            loaded,
            failures,
            next_try,
            config: last_config,
        } = run;
        let polled_serial = state.certificate.as_ref().map(|m| m.serial.clone());
        // A certificate stored by another host or an earlier run.
        if let Some(meta) = &state.certificate
            && loaded.as_ref().is_none_or(|l| l.meta.serial != meta.serial)
        {
            match self.install_stored().await {
                Ok(Some((meta, chain_pem))) => *loaded = Some(loaded_from(meta, chain_pem)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ACME: the stored certificate cannot be used"),
            }
        }
        let Some(config) = state.config else { return };
        if last_config.as_ref() != Some(&config) {
            // New settings deserve an attempt now, not after the backoff
            // the old ones earned.
            *failures = 0;
            *next_try = None;
            *last_config = Some(config.clone());
        }
        if let Some(l) = loaded.as_mut()
            && covers(&l.meta, &config)
        {
            self.check_ari(&config, l).await;
        }
        let requested = state.renew_requested;
        let why = if requested {
            Some("renewal requested")
        } else if !loaded.as_ref().is_some_and(|l| covers(&l.meta, &config)) {
            Some("no certificate for the configured names")
        } else if loaded.as_ref().is_some_and(|l| Timestamp::now() >= l.renew_at) {
            Some("two thirds of the lifetime passed")
        } else {
            None
        };
        let Some(mut why) = why else { return };
        if !requested && next_try.is_some_and(|t| Instant::now() < t) {
            return;
        }
        // One host of a cluster orders at a time; the others install what
        // it stores. A lease outlives a crashed holder by at most
        // LEASE_SECS. It is taken before the renewal request, so a request
        // is never consumed by a host that then may not order.
        match self.link.acquire_lease(&self.holder, LEASE_SECS).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("ACME: another host is ordering; waiting for its certificate");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "ACME: the core did not grant the lease");
                return;
            }
        }
        // Another host may have stored a certificate since this poll, and
        // released the lease just now: install that one instead.
        if let Ok(fresh) = self.link.state().await
            && fresh.certificate.map(|m| m.serial) != polled_serial
            && !fresh.renew_requested
        {
            self.release().await;
            return;
        }
        if requested {
            let taken = match self.link.take_renewal().await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "ACME: taking the renewal request failed");
                    false
                }
            };
            let still_due = !loaded.as_ref().is_some_and(|l| covers(&l.meta, &config))
                || loaded.as_ref().is_some_and(|l| Timestamp::now() >= l.renew_at);
            // Another host took the request: order only if due anyway.
            let order_anyway = still_due && next_try.is_none_or(|t| Instant::now() >= t);
            if !(taken || order_anyway) {
                self.release().await;
                return;
            }
            if !taken {
                why = "due (the renewal request went to another host)";
            }
        }
        tracing::info!(reason = why, domains = ?config.domains, challenge = config.challenge.as_str(), "ACME: requesting a certificate");
        let at = Timestamp::now();
        let issuer = issue::Issuer {
            link: &self.link,
            options: &self.options,
            store: &self.store,
            http: &self.http,
        };
        let result = issuer.issue(&config).await;
        let stored = match result {
            Ok(cert) => match self.link.store_certificate(&cert).await {
                Ok(()) => Ok(cert),
                Err(e) => Err(format!("storing the certificate in the core: {}", chain(&e))),
            },
            Err(e) => Err(chain(&e)),
        };
        let error = match stored {
            Ok(cert) => match certs::certified_key(&cert.chain_pem, &cert.key_pem) {
                Ok(key) => {
                    self.store.replace(key);
                    tracing::info!(serial = %cert.meta.serial, not_after = %cert.meta.not_after, names = ?cert.meta.names, "ACME: new certificate in use");
                    *loaded = Some(loaded_from(cert.meta, cert.chain_pem));
                    *failures = 0;
                    *next_try = None;
                    None
                }
                Err(e) => Some(chain(&e)),
            },
            Err(e) => Some(e),
        };
        if let Some(error) = &error {
            *failures = failures.saturating_add(1);
            let wait = schedule::backoff(self.options.retry_base, *failures, rand::random::<f64>());
            *next_try = Some(Instant::now() + wait);
            tracing::warn!(%error, failures = *failures, retry_in = ?wait, "ACME: getting a certificate failed; the current one stays in use");
        }
        if let Err(e) = self.link.report(&AttemptReport { at, error }).await {
            tracing::warn!(error = %chain(&e), "ACME: reporting the attempt to the core failed");
        }
        self.release().await;
    }

    /// Gives the ordering lease back.
    async fn release(&self) {
        if let Err(e) = self.link.release_lease(&self.holder).await {
            tracing::warn!(error = %chain(&e), "ACME: releasing the lease failed (it expires by itself)");
        }
    }

    /// Moves the renewal time into the CA's suggested window when the CA
    /// offers ARI: a random moment inside it, as RFC 9773 asks, so that a
    /// CA can pull renewals forward (e.g. before a mass revocation).
    async fn check_ari(&self, config: &AcmeConfig, loaded: &mut Loaded) {
        if loaded.ari_next.is_none_or(|t| Instant::now() < t) {
            return;
        }
        let issuer = issue::Issuer {
            link: &self.link,
            options: &self.options,
            store: &self.store,
            http: &self.http,
        };
        match issuer.renewal_window(config, &loaded.chain_pem).await {
            Ok(Some((start, end))) => {
                let span = end.duration_since(start).as_secs_f64().max(0.0);
                let pick = jiff::SignedDuration::from_secs_f64(span * rand::random::<f64>());
                loaded.renew_at = start.checked_add(pick).unwrap_or(start);
                loaded.ari_next = Some(Instant::now() + ARI_RECHECK);
                tracing::info!(renew_at = %loaded.renew_at, %start, %end, "ACME: renewal moved into the CA's window (ARI)");
            }
            Ok(None) => loaded.ari_next = None,
            Err(e) => {
                loaded.ari_next = Some(Instant::now() + ARI_RECHECK);
                tracing::debug!(error = %chain(&e), "ACME: no renewal window from the CA; keeping two thirds");
            }
        }
    }

    /// Loads the certificate stored in the core into the store.
    async fn install_stored(&self) -> Result<Option<(CertMeta, String)>, String> {
        let Some(stored) = self.link.certificate().await.map_err(|e| chain(&e))? else {
            return Ok(None);
        };
        let key = certs::certified_key(&stored.chain_pem, &stored.key_pem).map_err(|e| chain(&e))?;
        self.store.replace(key);
        tracing::info!(serial = %stored.meta.serial, not_after = %stored.meta.not_after, "ACME: certificate loaded from the core");
        Ok(Some((stored.meta, stored.chain_pem)))
    }

    /// Loads the stored certificate once, at start (before the listeners
    /// serve), so a restart presents it from the first handshake.
    pub async fn load_at_start(&self) -> bool {
        match self.install_stored().await {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "ACME: no usable certificate from the core at start; using the local one");
                false
            }
        }
    }
}

fn loaded_from(meta: CertMeta, chain_pem: String) -> Loaded {
    let renew_at = schedule::renew_at(meta.not_before, meta.not_after, rand::random::<f64>());
    tracing::info!(%renew_at, serial = %meta.serial, "ACME: renewal scheduled");
    Loaded {
        meta,
        chain_pem,
        renew_at,
        ari_next: Some(Instant::now()),
    }
}

/// Whether the certificate covers exactly the configured names.
fn covers(meta: &CertMeta, config: &AcmeConfig) -> bool {
    let mut have: Vec<&str> = meta.names.iter().map(String::as_str).collect();
    let mut want: Vec<&str> = config.domains.iter().map(|d| d.as_str()).collect();
    have.sort_unstable();
    have.dedup();
    want.sort_unstable();
    want.dedup();
    have == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http01_cache_is_bounded_and_keeps_live_answers() {
        let answers = HttpAnswers::default();
        answers.insert("mine", Some("mine.thumb".into()));
        for i in 0..3 * HTTP_CACHE_MAX {
            answers.insert(&format!("made-up-{i}"), None);
        }
        let entries = answers.entries.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(entries.len() <= HTTP_CACHE_MAX);
        assert!(entries.get("mine").is_some_and(|(a, _)| a.is_some()));
    }
}
