//! Request and response bodies.
//!
//! Request types reject unknown fields and carry `validator` rules; response
//! types reject unknown fields too, which is how the edge keeps an undeclared
//! field from ever leaving the host.

use std::borrow::Cow;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

mod events;
mod servers;
mod users;
pub use events::ChangeEvent;
pub use servers::{
    MAX_PREFIX_V4, MAX_PREFIX_V6, MIN_PREFIX_V4, MIN_PREFIX_V6, Server, ServerCreate, ServerPage, ServerPatch,
    ServerSessions, ServerState, Session,
};
pub use users::{
    Device, DeviceAddress, DeviceCreate, DeviceCreated, DevicePage, LINK_MAX_SECONDS, Link, LinkCreate, User,
    UserCreate, UserPage, UserPatch,
};

use crate::values::{
    AdminId, ApiToken, LoginPassword, Name, OrgId, Password, Role, Token, TokenId, TotpCode, Username,
};

/// A schema-level rule's error that names the field it is about.
fn field_error(field: &'static str, code: &'static str, message: &'static str) -> ValidationError {
    let mut err = ValidationError::new(code).with_message(Cow::Borrowed(message));
    err.add_param(Cow::Borrowed("field"), &field);
    err
}

/// `POST /api/v1/setup`: create the first admin with the one-time setup token.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "setup_password_differs"))]
pub struct SetupRequest {
    /// The token printed at first start and stored in `DATA_DIR/setup-token`.
    pub token: Token,
    /// The first admin's login name.
    pub username: Username,
    /// The first admin's password.
    pub password: Password,
}

fn setup_password_differs(req: &SetupRequest) -> Result<(), ValidationError> {
    if req.password.expose().to_lowercase().contains(req.username.as_str()) {
        return Err(field_error(
            "password",
            "contains_username",
            "must not contain the username",
        ));
    }
    Ok(())
}

/// An administrator as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// The admin's id.
    pub id: AdminId,
    /// The login name.
    pub username: Username,
    /// What the admin may do.
    pub role: Role,
}

/// An administrator with the state an admin needs to manage them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminDetail {
    /// The admin's id.
    pub id: AdminId,
    /// The login name.
    pub username: Username,
    /// What the admin may do.
    pub role: Role,
    /// Disabled admins cannot sign in; their sessions and tokens are gone.
    pub disabled: bool,
    /// Whether sign-in requires a TOTP code.
    pub totp_enabled: bool,
    /// When the admin was created.
    pub created_at: Timestamp,
}

/// `POST /api/v1/admins`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "admin_password_differs"))]
pub struct AdminCreate {
    /// The login name, unique.
    pub username: Username,
    /// The initial password.
    pub password: Password,
    /// What the admin may do.
    pub role: Role,
}

fn admin_password_differs(req: &AdminCreate) -> Result<(), ValidationError> {
    if req.password.expose().to_lowercase().contains(req.username.as_str()) {
        return Err(field_error(
            "password",
            "contains_username",
            "must not contain the username",
        ));
    }
    Ok(())
}

/// `PATCH /api/v1/admins/{id}`: the fields to change. Any role may change
/// its own password (with `current_password`); everything else, and other
/// admins, need the `admin` role.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "admin_patch_rules"))]
pub struct AdminPatch {
    /// A new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The caller's current password: required to change one's own password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<LoginPassword>,
    /// Disable (sign-in refused, sessions and tokens ended) or enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

fn admin_patch_rules(patch: &AdminPatch) -> Result<(), ValidationError> {
    if patch.role.is_none() && patch.password.is_none() && patch.disabled.is_none() {
        return Err(field_error(
            "role",
            "empty_patch",
            "nothing to change: give role, password or disabled",
        ));
    }
    if patch.current_password.is_some() && patch.password.is_none() {
        return Err(field_error(
            "current_password",
            "without_password",
            "only goes with a new password",
        ));
    }
    Ok(())
}

/// `POST /api/v1/admins/{id}/totp`: a pending enrolment. Shown once; the
/// server keeps the secret only sealed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolment {
    /// `otpauth://totp/...` for authenticator apps.
    pub otpauth_uri: String,
    /// The shared secret in base32 (RFC 4648, no padding).
    pub secret: String,
    /// The URI as an SVG QR code.
    pub qr_svg: String,
}

/// `POST /api/v1/admins/{id}/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    /// The current code from the authenticator.
    pub code: TotpCode,
}

/// The longest an API token may live: one year.
pub const TOKEN_MAX_SECS: u32 = 366 * 24 * 3600;
/// How long an API token lives when `expires_in` is not given: 90 days.
pub const TOKEN_DEFAULT_SECS: u32 = 90 * 24 * 3600;

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// What the token is for.
    pub name: Name,
    /// The token's role; at most the caller's own.
    pub role: Role,
    /// Lifetime in seconds, 60 to one year; 90 days when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 60, max = 31_622_400))]
    pub expires_in: Option<u32>,
}

/// The answer to `POST /api/v1/tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreated {
    /// The token's id.
    pub id: TokenId,
    /// Its name.
    pub name: Name,
    /// Its role.
    pub role: Role,
    /// Send as `Authorization: Bearer <token>`. Not retrievable later.
    pub token: ApiToken,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// An API token as lists show it (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInfo {
    /// The token's id.
    pub id: TokenId,
    /// Its name.
    pub name: Name,
    /// Its role.
    pub role: Role,
    /// The admin who created it; it stops working when they are disabled or deleted.
    pub admin_id: AdminId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The login name.
    pub username: Username,
    /// The password.
    pub password: LoginPassword,
    /// The current TOTP code, when the admin has enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<TotpCode>,
}

/// The answer to a successful login; the session itself is in the cookie.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginResponse {
    /// Send this as `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    /// Who logged in.
    pub admin: Admin,
    /// When the session ends.
    pub expires_at: Timestamp,
}

/// `POST /api/v1/orgs`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgCreate {
    /// The organization's name, unique.
    pub name: Name,
}

/// `PATCH /api/v1/orgs/{id}`: the fields to change.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "org_patch_not_empty"))]
pub struct OrgPatch {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
}

fn org_patch_not_empty(patch: &OrgPatch) -> Result<(), ValidationError> {
    if patch.name.is_none() {
        return Err(field_error(
            "name",
            "empty_patch",
            "nothing to change: give at least one field",
        ));
    }
    Ok(())
}

/// An organization.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Org {
    /// The id.
    pub id: OrgId,
    /// The name.
    pub name: Name,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A page of a list; `next_cursor` fetches the next one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; absent on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Carried out.
    Success,
    /// Refused (authentication, permission, conflict, validation).
    Denied,
    /// Failed on our side.
    Error,
}

impl Outcome {
    /// The outcome's name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When it happened.
    pub time: Timestamp,
    /// Who did it: `admin:<username>`, `token:<id>`, `anonymous`, `system`.
    pub actor: String,
    /// The client's address as the edge saw it.
    pub client_addr: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// What was attempted, e.g. `org.create`.
    pub action: String,
    /// What it was done to, e.g. `org:<id>`.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// A short reason for refusals and errors.
    pub detail: Option<String>,
    /// SHA-256 over this entry and `prev_hash`, hex.
    pub hash: String,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
}

/// `GET /api/v1/audit/verify`: the result of recomputing the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditVerify {
    /// Whether every entry fits the chain.
    pub ok: bool,
    /// How many entries the log holds.
    pub entries: u64,
    /// The id of the first entry that does not fit, when one does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_id: Option<i64>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok` when answered.
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// `ready` or `not-ready`.
    pub status: String,
    /// Whether the core answered.
    pub core: bool,
    /// Whether the edge has a certificate loaded.
    pub certificate: bool,
}

/// A page of admins.
pub type AdminPage = Page<AdminDetail>;
/// A page of API tokens.
pub type TokenPage = Page<TokenInfo>;
/// A page of organizations.
pub type OrgPage = Page<Org>;
/// A page of the audit log.
pub type AuditPage = Page<AuditEntry>;
