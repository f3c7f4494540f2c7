//! `/api/v1/settings` and `/api/v1/settings/acme/renew` (admin only). The
//! core only records; the edge does ACME and picks changes up by polling
//! `/internal/acme/state` (see `internal_acme`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use schemas::acme::{CertificateStatus, RenewRequested, Settings, SettingsPatch};
use schemas::api::Outcome;
use schemas::problem::FieldError;
use schemas::values::HostAddress;

use super::decode;
use crate::context::RequestCtx;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AcmeSettings, AcmeSettingsChange, StoreError};

const TARGET: &str = "settings";

/// The settings as the API shows them, with the certificate's status.
pub(crate) async fn current(state: &AppState, settings: AcmeSettings) -> Result<Settings, StoreError> {
    let cert = state.store().acme_certificate().await?;
    let meta = cert.map(|c| c.meta);
    let address = state.store().public_address().await?;
    // The stored value was checked on the way in; a default host name that
    // is somehow not an address shows as `localhost` rather than failing.
    let public_address = address
        .parse::<HostAddress>()
        .or_else(|_| "localhost".parse::<HostAddress>())
        .map_err(|_| StoreError::Corrupt {
            column: "settings.public_address",
            value: address.chars().take(200).collect(),
        })?;
    Ok(Settings {
        public_address,
        acme_domains: settings.domains,
        acme_email: settings.email,
        acme_directory: settings.directory,
        acme_challenge: settings.challenge,
        certificate: CertificateStatus {
            names: meta.as_ref().map(|m| m.names.clone()).unwrap_or_default(),
            not_after: meta.as_ref().map(|m| m.not_after),
            issuer: meta.as_ref().map(|m| m.issuer.clone()),
            serial: meta.map(|m| m.serial),
            last_attempt: settings.last_attempt,
            last_error: settings.last_error,
            renew_requested: settings.renew_requested,
        },
    })
}

pub(super) async fn get(State(state): State<AppState>) -> Result<Json<Settings>, ApiError> {
    let settings = state.store().acme_settings().await?;
    Ok(Json(current(&state, settings).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    body: Bytes,
) -> Result<Json<Settings>, ApiError> {
    ctx.set_target(TARGET.to_owned());
    let patch: SettingsPatch = decode(&body)?;
    let change = AcmeSettingsChange {
        public_address: patch.public_address.map(String::from),
        domains: patch.acme_domains,
        email: patch.acme_email,
        directory: patch.acme_directory,
        challenge: patch.acme_challenge,
    };
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    let settings = state.store().update_acme_settings(change, record).await?;
    ctx.mark_written();
    Ok(Json(current(&state, settings).await?))
}

pub(super) async fn renew(
    State(state): State<AppState>,
    ctx: RequestCtx,
) -> Result<(StatusCode, Json<RenewRequested>), ApiError> {
    ctx.set_target(TARGET.to_owned());
    if state.store().acme_settings().await?.domains.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "acme_domains",
            "ACME is off: set acme_domains first",
        )]));
    }
    let record = ctx.record(state.clock().now(), Outcome::Success, None);
    state.store().request_acme_renewal(record).await?;
    ctx.mark_written();
    Ok((StatusCode::ACCEPTED, Json(RenewRequested { renew_requested: true })))
}
