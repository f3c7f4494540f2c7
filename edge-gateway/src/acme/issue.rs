//! One issuance: account, order, challenges, finalize, download. Every
//! challenge answer is published in the core first (so any host of a
//! cluster can answer the CA), then kept locally too, and withdrawn when the
//! order is done, whether it succeeded or not.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use schemas::acme::ChallengeKind;
use schemas::acme::internal::{AccountRecord, AcmeConfig, ChallengeAnswer, StoredCertificate};

use super::certs;
use super::link::{CoreLink, LinkError};
use super::{AcmeOptions, HttpAnswers, chain};
use crate::tls::CertStore;

/// How long the CA gets to validate the challenges and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an issuance failed. The message is what the status in
/// `GET /api/v1/settings` shows.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The core did not answer.
    #[error("the core: {0}")]
    Core(#[from] LinkError),
    /// Talking to the CA failed (unreachable, or it refused a request).
    #[error("{step}: {detail}")]
    Ca {
        /// What we were doing.
        step: &'static str,
        /// What the CA answered, or why it could not be reached.
        detail: String,
    },
    /// A challenge failed validation.
    #[error("{kind} challenge for {domain} failed: the CA answered: {detail}")]
    Challenge {
        /// The challenge type.
        kind: &'static str,
        /// The name.
        domain: String,
        /// The CA's problem document.
        detail: String,
    },
    /// The CA offers no challenge of the configured type.
    #[error("the CA offers no {kind} challenge for {domain}")]
    NoChallenge {
        /// The type.
        kind: &'static str,
        /// The name.
        domain: String,
    },
    /// Publishing the DNS-01 record failed (the core's DNS hook).
    #[error("dns-01 challenge for {domain}: setting the TXT record failed: {detail}")]
    DnsHook {
        /// The name.
        domain: String,
        /// What the core said.
        detail: String,
    },
    /// A certificate is unusable.
    #[error("certificate: {0}")]
    Cert(#[from] certs::CertError),
    /// The stored account does not parse.
    #[error("the stored ACME account does not parse: {0}")]
    Account(String),
}

fn ca(step: &'static str) -> impl FnOnce(instant_acme::Error) -> IssueError {
    move |e| IssueError::Ca {
        step,
        detail: chain(&e),
    }
}

/// The error for a refused "the challenge is ready". The CA may already
/// have tried the challenge when it answers (it validated at once, or a
/// retried request found the challenge failed); then its problem says why
/// the validation failed, and that is the challenge's failure, named as
/// such, not a failure to talk to the CA.
fn ready_refused(kind: ChallengeKind, domain: &str) -> impl FnOnce(instant_acme::Error) -> IssueError {
    /// RFC 8555 §6.7: the problems a failed validation is reported with.
    const VALIDATION: [&str; 6] = ["caa", "connection", "dns", "incorrectResponse", "tls", "unauthorized"];
    move |e| match &e {
        instant_acme::Error::Api(problem)
            if problem
                .r#type
                .as_deref()
                .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
                .is_some_and(|t| VALIDATION.contains(&t)) =>
        {
            IssueError::Challenge {
                kind: kind.as_str(),
                domain: domain.to_owned(),
                detail: problem.to_string(),
            }
        }
        _ => ca("telling the CA the challenge is ready")(e),
    }
}

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Dns01 => ChallengeType::Dns01,
    }
}

/// What the CA needs this host to show, and where it was published.
#[derive(Debug)]
struct Published {
    kind: ChallengeKind,
    key: String,
    domain: String,
    value: String,
}

/// Everything an issuance touches.
#[derive(Debug)]
pub(super) struct Issuer<'a> {
    pub(super) link: &'a CoreLink,
    pub(super) options: &'a AcmeOptions,
    pub(super) store: &'a Arc<CertStore>,
    pub(super) http: &'a HttpAnswers,
}

impl Issuer<'_> {
    async fn account(&self, config: &AcmeConfig) -> Result<Account, IssueError> {
        let builder = || match &self.options.ca_root {
            Some(root) => Account::builder_with_root(root).map_err(ca("loading --acme-ca-root")),
            None => Account::builder().map_err(ca("building the HTTPS client")),
        };
        let directory = config.directory.as_str();
        if let Some(record) = self.link.account(directory).await? {
            let credentials: AccountCredentials =
                serde_json::from_str(&record.credentials).map_err(|e| IssueError::Account(e.to_string()))?;
            return builder()?
                .from_credentials(credentials)
                .await
                .map_err(ca("restoring the ACME account"));
        }
        let contact: Vec<String> = config.email.iter().map(|e| format!("mailto:{e}")).collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.to_owned(),
                None,
            )
            .await
            .map_err(ca("creating the ACME account"))?;
        let credentials = serde_json::to_string(&credentials).map_err(|e| IssueError::Account(e.to_string()))?;
        self.link
            .store_account(&AccountRecord {
                directory: directory.to_owned(),
                credentials,
            })
            .await?;
        tracing::info!(directory, "ACME account created");
        Ok(account)
    }

    /// Gets a certificate for `config.domains`.
    pub(super) async fn issue(&self, config: &AcmeConfig) -> Result<StoredCertificate, IssueError> {
        let mut published = Vec::new();
        let result = self.order(config, &mut published).await;
        for p in published {
            self.withdraw(&p).await;
        }
        result
    }

    async fn order(
        &self,
        config: &AcmeConfig,
        published: &mut Vec<Published>,
    ) -> Result<StoredCertificate, IssueError> {
        let account = self.account(config).await?;
        let identifiers: Vec<Identifier> = config
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.as_str().to_owned()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(ca("creating the order"))?;
        let kind = config.challenge;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(ca("fetching an authorization"))?;
            let domain = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(IssueError::Challenge {
                        kind: kind.as_str(),
                        domain,
                        detail: format!("the authorization is {status:?}"),
                    });
                }
            }
            let mut challenge = authz
                .challenge(challenge_type(kind))
                .ok_or_else(|| IssueError::NoChallenge {
                    kind: kind.as_str(),
                    domain: domain.clone(),
                })?;
            let key_auth = challenge.key_authorization();
            let p = match kind {
                ChallengeKind::Http01 => Published {
                    kind,
                    key: challenge.token.clone(),
                    domain: domain.clone(),
                    value: key_auth.as_str().to_owned(),
                },
                ChallengeKind::TlsAlpn01 => {
                    let (cert, key) = certs::alpn_challenge(&domain, key_auth.digest().as_ref())?;
                    self.store.set_challenge(&domain, certs::challenge_key(&cert, &key)?);
                    self.link
                        .put_challenge(
                            &domain,
                            &ChallengeAnswer {
                                value: cert,
                                key_pem: Some(key),
                                kind,
                            },
                        )
                        .await?;
                    published.push(Published {
                        kind,
                        key: domain.clone(),
                        domain: domain.clone(),
                        value: String::new(),
                    });
                    challenge.set_ready().await.map_err(ready_refused(kind, &domain))?;
                    continue;
                }
                ChallengeKind::Dns01 => Published {
                    kind,
                    key: domain.clone(),
                    domain: domain.clone(),
                    value: key_auth.dns_value(),
                },
            };
            let answer = ChallengeAnswer {
                value: p.value.clone(),
                key_pem: None,
                kind,
            };
            // For DNS-01 the core runs the hook before it answers, so a
            // failure here is usually the hook's: say so.
            let put = self.link.put_challenge(&p.key, &answer).await;
            if kind == ChallengeKind::Dns01 {
                published.push(Published {
                    kind,
                    key: p.key.clone(),
                    domain: p.domain.clone(),
                    value: p.value.clone(),
                });
                put.map_err(|e| IssueError::DnsHook {
                    domain: p.domain.clone(),
                    detail: crate::acme::chain(&e),
                })?;
                challenge.set_ready().await.map_err(ready_refused(kind, &domain))?;
                continue;
            }
            put?;
            match kind {
                ChallengeKind::Http01 => self.http.insert(&p.key, Some(p.value.clone())),
                // The core ran the DNS hook before answering the PUT.
                ChallengeKind::Dns01 => {}
                ChallengeKind::TlsAlpn01 => {}
            }
            published.push(p);
            challenge.set_ready().await.map_err(ready_refused(kind, &domain))?;
        }

        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&policy).await;
        if !matches!(status, Ok(OrderStatus::Ready)) {
            // Name the challenge that failed and what the CA said about it.
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authz)) = authorizations.next().await {
                let Ok(state) = authz.refresh().await else { continue };
                let domain = state.identifier().to_string();
                for c in &state.challenges {
                    if let Some(problem) = &c.error {
                        return Err(IssueError::Challenge {
                            kind: kind.as_str(),
                            domain,
                            detail: problem.to_string(),
                        });
                    }
                }
            }
            return Err(match status {
                Err(e) => ca("waiting for the CA to validate")(e),
                Ok(other) => IssueError::Ca {
                    step: "waiting for the CA to validate",
                    detail: format!("the order is {other:?}"),
                },
            });
        }
        let key_pem = order.finalize().await.map_err(ca("finalizing the order"))?;
        let chain_pem = order
            .poll_certificate(&policy)
            .await
            .map_err(ca("downloading the certificate"))?;
        // Refuse to store what could not be presented.
        certs::certified_key(&chain_pem, &key_pem)?;
        let meta = certs::meta(&chain_pem)?;
        Ok(StoredCertificate {
            meta,
            chain_pem,
            key_pem,
        })
    }

    /// The CA's suggested renewal window for the leaf of `chain_pem` (ARI,
    /// RFC 9773), or `None` when the CA does not offer ARI.
    pub(super) async fn renewal_window(
        &self,
        config: &AcmeConfig,
        chain_pem: &str,
    ) -> Result<Option<(jiff::Timestamp, jiff::Timestamp)>, IssueError> {
        let chain = certs::chain_der(chain_pem)?;
        let leaf = chain
            .first()
            .ok_or_else(|| certs::CertError::Pem("no certificate".into()))?;
        let Ok(id) = CertificateIdentifier::try_from(leaf) else {
            // No authority key identifier: ARI cannot name this certificate.
            return Ok(None);
        };
        let account = self.account(config).await?;
        match account.renewal_info(&id).await {
            Ok((info, _)) => {
                let ts = |t: time::OffsetDateTime| jiff::Timestamp::from_second(t.unix_timestamp()).ok();
                let window = &info.suggested_window;
                Ok(ts(window.start).zip(ts(window.end)))
            }
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(ca("asking the CA for its renewal window (ARI)")(e)),
        }
    }

    async fn withdraw(&self, p: &Published) {
        match p.kind {
            ChallengeKind::Http01 => self.http.insert(&p.key, None),
            ChallengeKind::TlsAlpn01 => self.store.remove_challenge(&p.domain),
            // The core runs the DNS hook's `clear` when the answer goes.
            ChallengeKind::Dns01 => {}
        }
        if let Err(e) = self.link.delete_challenge(p.kind, &p.key).await {
            tracing::warn!(error = %chain(&e), "ACME: withdrawing a challenge answer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn problem(kind: &str) -> instant_acme::Error {
        let json = serde_json::json!({"type": kind, "detail": "dial tcp: connection refused", "status": 400});
        instant_acme::Error::Api(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn a_failed_validation_on_ready_is_the_challenges_failure() {
        let e = ready_refused(ChallengeKind::Http01, "a.example")(problem("urn:ietf:params:acme:error:connection"));
        let text = e.to_string();
        assert!(
            text.starts_with("http-01 challenge for a.example failed: the CA answered:"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        let e = ready_refused(ChallengeKind::Http01, "a.example")(problem("urn:ietf:params:acme:error:rateLimited"));
        assert!(
            e.to_string().starts_with("telling the CA the challenge is ready:"),
            "{e}"
        );
    }
}
