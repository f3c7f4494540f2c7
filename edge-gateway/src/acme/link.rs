//! Typed calls to the core's `/internal/acme/` endpoints.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use schemas::acme::ChallengeKind;
use schemas::acme::internal::{AccountRecord, AcmeState, AttemptReport, ChallengeAnswer, Lease, StoredCertificate};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::forward::{CoreClient, ForwardError, Provenance};

/// Why a call to the core failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The core could not be reached or did not answer.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The core answered with an unexpected status.
    #[error("the core answered {status} to {path}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// The path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The problem document's detail, if any (e.g. the DNS hook's error).
        detail: Option<String>,
    },
    /// The answer did not parse.
    #[error("the core's answer to {path} did not parse")]
    Parse {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The core, as the ACME client sees it.
#[derive(Debug, Clone)]
pub struct CoreLink {
    core: CoreClient,
}

/// The `detail` of a problem document, short, for error messages.
fn problem_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let detail = value.get("detail")?.as_str()?;
    Some(detail.chars().take(500).collect())
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl CoreLink {
    /// Talks to the core through `core`.
    pub fn new(core: CoreClient) -> Self {
        Self { core }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<(StatusCode, Bytes), LinkError> {
        let request_id = format!("edge-acme-{}", uuid::Uuid::now_v7());
        let from = Provenance {
            client: SocketAddr::from(([127, 0, 0, 1], 0)),
            request_id: &request_id,
        };
        let answer = self.core.send(method, path, &HeaderMap::new(), body, from).await?;
        Ok((answer.status, answer.body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, LinkError> {
        let (status, body) = self.call(Method::GET, path, None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|source| LinkError::Parse {
                    path: path.to_owned(),
                    source,
                }),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(LinkError::Status {
                path: path.to_owned(),
                status,
                detail: problem_detail(&body),
            }),
        }
    }

    async fn send<T: Serialize>(&self, method: Method, path: &str, value: &T) -> Result<Bytes, LinkError> {
        let body = serde_json::to_vec(value).map_err(|source| LinkError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let (status, body) = self.call(method, path, Some(Bytes::from(body))).await?;
        if !status.is_success() {
            return Err(LinkError::Status {
                path: path.to_owned(),
                status,
                detail: problem_detail(&body),
            });
        }
        Ok(body)
    }

    /// The configuration, the renewal flag and the stored certificate's id.
    pub async fn state(&self) -> Result<AcmeState, LinkError> {
        self.get("/internal/acme/state").await?.ok_or(LinkError::Status {
            path: "/internal/acme/state".into(),
            status: StatusCode::NOT_FOUND,
            detail: None,
        })
    }

    /// Takes the renewal request; `true` for exactly one edge.
    pub async fn take_renewal(&self) -> Result<bool, LinkError> {
        let path = "/internal/acme/renew/take";
        let body = self.send(Method::POST, path, &()).await?;
        serde_json::from_slice(&body).map_err(|source| LinkError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Asks for the right to order for `seconds`; `false`: another host
    /// holds it.
    pub async fn acquire_lease(&self, holder: &str, seconds: u32) -> Result<bool, LinkError> {
        let path = "/internal/acme/lease";
        let lease = Lease {
            holder: holder.to_owned(),
            seconds,
        };
        let body = self.send(Method::POST, path, &lease).await?;
        serde_json::from_slice(&body).map_err(|source| LinkError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Gives the right to order back.
    pub async fn release_lease(&self, holder: &str) -> Result<(), LinkError> {
        let lease = Lease {
            holder: holder.to_owned(),
            seconds: 0,
        };
        self.send(Method::POST, "/internal/acme/lease/release", &lease)
            .await
            .map(drop)
    }

    /// Records how an attempt ended.
    pub async fn report(&self, report: &AttemptReport) -> Result<(), LinkError> {
        self.send(Method::POST, "/internal/acme/attempt", report)
            .await
            .map(drop)
    }

    /// The stored certificate and key.
    pub async fn certificate(&self) -> Result<Option<StoredCertificate>, LinkError> {
        self.get("/internal/acme/certificate").await
    }

    /// Stores a new certificate and key.
    pub async fn store_certificate(&self, cert: &StoredCertificate) -> Result<(), LinkError> {
        self.send(Method::PUT, "/internal/acme/certificate", cert)
            .await
            .map(drop)
    }

    /// The account for `directory`.
    pub async fn account(&self, directory: &str) -> Result<Option<AccountRecord>, LinkError> {
        self.get(&format!(
            "/internal/acme/account?directory={}",
            percent_encode(directory)
        ))
        .await
    }

    /// Stores the account.
    pub async fn store_account(&self, account: &AccountRecord) -> Result<(), LinkError> {
        self.send(Method::PUT, "/internal/acme/account", account)
            .await
            .map(drop)
    }

    fn challenge_path(kind: ChallengeKind, key: &str) -> String {
        format!("/internal/acme/challenges/{}/{}", kind.as_str(), percent_encode(key))
    }

    /// Publishes a challenge answer for every host.
    pub async fn put_challenge(&self, key: &str, answer: &ChallengeAnswer) -> Result<(), LinkError> {
        self.send(Method::PUT, &Self::challenge_path(answer.kind, key), answer)
            .await
            .map(drop)
    }

    /// A challenge answer, if one is published.
    pub async fn challenge(&self, kind: ChallengeKind, key: &str) -> Result<Option<ChallengeAnswer>, LinkError> {
        self.get(&Self::challenge_path(kind, key)).await
    }

    /// Withdraws a challenge answer.
    pub async fn delete_challenge(&self, kind: ChallengeKind, key: &str) -> Result<(), LinkError> {
        let path = Self::challenge_path(kind, key);
        let (status, body) = self.call(Method::DELETE, &path, None).await?;
        if !status.is_success() {
            let detail = problem_detail(&body);
            return Err(LinkError::Status { path, status, detail });
        }
        Ok(())
    }
}
