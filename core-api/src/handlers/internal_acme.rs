//! `/internal/acme/...`: the loopback protocol between the edge's ACME
//! client and the core's database. These paths are not in the public route
//! table, so the edge never forwards a client's request here; the gate lets
//! them through only with the origin proof. Nothing here needs a session:
//! the origin secret is the credential (the edge and `rampart acme renew`
//! hold it).
//!
//! Secrets cross this hop in the clear (loopback only) and are sealed under
//! the host key before they reach the database.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::SignedDuration;
use schemas::acme::ChallengeKind;
use schemas::acme::internal::{
    AccountRecord, AcmeConfig, AcmeState, AttemptReport, ChallengeAnswer, Lease, StoredCertificate, valid_challenge_key,
};
use schemas::api::Outcome;
use serde::Deserialize;

use crate::audit::AuditRecord;
use crate::error::{ApiError, InternalError};
use crate::state::AppState;
use crate::store::{StoredCert, StoredChallenge};

/// How long a challenge answer is kept: an order that takes longer has
/// failed anyway.
const CHALLENGE_TTL: SignedDuration = SignedDuration::from_hours(1);

fn seal_error(e: crate::sealed::SealError) -> ApiError {
    ApiError::Internal(InternalError::Seal(e))
}

fn json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Validation(vec![schemas::problem::FieldError::new("body", e.to_string())]))
}

pub(super) async fn state(State(state): State<AppState>) -> Result<Json<AcmeState>, ApiError> {
    let settings = state.store().acme_settings().await?;
    let cert = state.store().acme_certificate().await?;
    let config = (!settings.domains.is_empty()).then(|| AcmeConfig {
        domains: settings.domains,
        email: settings.email.map(String::from),
        directory: settings.directory,
        challenge: settings.challenge,
    });
    Ok(Json(AcmeState {
        config,
        renew_requested: settings.renew_requested,
        certificate: cert.map(|c| c.meta),
    }))
}

/// `rampart acme renew`: the same as the admin route, from the host itself.
pub(super) async fn request_renewal(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    let record = AuditRecord {
        time: state.clock().now(),
        actor: "local:rampart-acme-renew".into(),
        client_addr: None,
        request_id: None,
        action: "setting.acme_renew".into(),
        target: Some("settings".into()),
        outcome: Outcome::Success,
        detail: None,
    };
    state.store().request_acme_renewal(record).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The edge takes the renewal request: only one edge gets `true`.
pub(super) async fn take_renewal(State(state): State<AppState>) -> Result<Json<bool>, ApiError> {
    Ok(Json(state.store().take_acme_renewal().await?))
}

/// Grants the right to order to one edge at a time.
pub(super) async fn acquire_lease(State(state): State<AppState>, body: Bytes) -> Result<Json<bool>, ApiError> {
    let lease: Lease = json(&body)?;
    if !valid_challenge_key(&lease.holder) {
        return Err(ApiError::Validation(vec![schemas::problem::FieldError::new(
            "holder",
            "must be a short token",
        )]));
    }
    let now = state.clock().now();
    let until = now + SignedDuration::from_secs(i64::from(lease.seconds.min(3600)));
    Ok(Json(state.store().acquire_acme_lease(lease.holder, now, until).await?))
}

/// Ends an edge's lease.
pub(super) async fn release_lease(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let lease: Lease = json(&body)?;
    state.store().release_acme_lease(lease.holder).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn attempt(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let report: AttemptReport = json(&body)?;
    match &report.error {
        Some(error) => tracing::warn!(%error, "ACME: the edge reports a failed attempt"),
        None => tracing::info!("ACME: the edge reports a successful attempt"),
    }
    state.store().record_acme_attempt(report.at, report.error).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn cert_context(serial: &str) -> String {
    format!("acme:certificate:{serial}:key")
}

pub(super) async fn get_certificate(State(state): State<AppState>) -> Result<Json<StoredCertificate>, ApiError> {
    let cert = state.store().acme_certificate().await?.ok_or(ApiError::NotFound)?;
    let key = state
        .host_key()
        .open(&cert.key_sealed, &cert_context(&cert.meta.serial))
        .map_err(seal_error)?;
    let key_pem = String::from_utf8(key.to_vec()).map_err(|_| seal_error(crate::sealed::SealError::Malformed))?;
    Ok(Json(StoredCertificate {
        meta: cert.meta,
        chain_pem: cert.chain_pem,
        key_pem,
    }))
}

pub(super) async fn put_certificate(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let cert: StoredCertificate = json(&body)?;
    let key_sealed = state
        .host_key()
        .seal(cert.key_pem.as_bytes(), &cert_context(&cert.meta.serial));
    tracing::info!(serial = %cert.meta.serial, not_after = %cert.meta.not_after, "ACME: certificate stored");
    let stored = StoredCert {
        meta: cert.meta,
        chain_pem: cert.chain_pem,
        key_sealed,
    };
    state
        .store()
        .store_acme_certificate(stored, state.clock().now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct DirectoryQuery {
    directory: String,
}

fn account_context(directory: &str) -> String {
    format!("acme:account:{directory}")
}

pub(super) async fn get_account(
    State(state): State<AppState>,
    Query(q): Query<DirectoryQuery>,
) -> Result<Json<AccountRecord>, ApiError> {
    let sealed = state
        .store()
        .acme_account(q.directory.clone())
        .await?
        .ok_or(ApiError::NotFound)?;
    let plain = state
        .host_key()
        .open(&sealed, &account_context(&q.directory))
        .map_err(seal_error)?;
    let credentials = String::from_utf8(plain.to_vec()).map_err(|_| seal_error(crate::sealed::SealError::Malformed))?;
    Ok(Json(AccountRecord {
        directory: q.directory,
        credentials,
    }))
}

pub(super) async fn put_account(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let account: AccountRecord = json(&body)?;
    let sealed = state
        .host_key()
        .seal(account.credentials.as_bytes(), &account_context(&account.directory));
    state
        .store()
        .store_acme_account(account.directory, sealed, state.clock().now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn challenge_path(kind: &str, key: &str) -> Result<(ChallengeKind, String), ApiError> {
    let kind: ChallengeKind = kind.parse().map_err(|_| ApiError::NotFound)?;
    if !valid_challenge_key(key) {
        return Err(ApiError::NotFound);
    }
    Ok((kind, key.to_owned()))
}

fn challenge_context(kind: ChallengeKind, key: &str) -> String {
    format!("acme:challenge:{}:{key}", kind.as_str())
}

pub(super) async fn get_challenge(
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Json<ChallengeAnswer>, ApiError> {
    let (kind, key) = challenge_path(&kind, &key)?;
    let stored = state
        .store()
        .acme_challenge(kind, key.clone(), state.clock().now())
        .await?
        .ok_or(ApiError::NotFound)?;
    let key_pem = match stored.key_sealed {
        Some(sealed) => {
            let plain = state
                .host_key()
                .open(&sealed, &challenge_context(kind, &key))
                .map_err(seal_error)?;
            Some(String::from_utf8(plain.to_vec()).map_err(|_| seal_error(crate::sealed::SealError::Malformed))?)
        }
        None => None,
    };
    Ok(Json(ChallengeAnswer {
        value: stored.value,
        key_pem,
        kind,
    }))
}

pub(super) async fn put_challenge(
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (kind, key) = challenge_path(&kind, &key)?;
    let answer: ChallengeAnswer = json(&body)?;
    if kind == ChallengeKind::Dns01 {
        // Answered only once the record is set: the edge tells the CA to
        // check right after this call returns.
        crate::acme_hook::run(state.acme_dns_hook(), "set", &key, &answer.value)
            .await
            .map_err(|e| ApiError::Upstream(e.to_string()))?;
    }
    let key_sealed = answer
        .key_pem
        .map(|pem| state.host_key().seal(pem.as_bytes(), &challenge_context(kind, &key)));
    let now = state.clock().now();
    let stored = StoredChallenge {
        value: answer.value,
        key_sealed,
    };
    state
        .store()
        .put_acme_challenge(kind, key, stored, now, now + CHALLENGE_TTL)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_challenge(
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (kind, key) = challenge_path(&kind, &key)?;
    if kind == ChallengeKind::Dns01
        && let Some(stored) = state
            .store()
            .acme_challenge(kind, key.clone(), state.clock().now())
            .await?
        && let Err(e) = crate::acme_hook::run(state.acme_dns_hook(), "clear", &key, &stored.value).await
    {
        // The stale record does no harm; the row goes anyway.
        tracing::warn!(error = %e, "ACME: the DNS hook could not clear the record");
    }
    state.store().delete_acme_challenge(kind, key).await?;
    Ok(StatusCode::NO_CONTENT)
}
