//! Users of organizations, their devices, and key links.

use std::net::{Ipv4Addr, Ipv6Addr};

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::{Page, field_error};
use crate::values::{DeviceId, Email, Name, OrgId, ServerId, UserId, WgKey};

/// `POST /api/v1/orgs/{id}/users`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// The user's name.
    pub name: Name,
    /// Their email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

/// `PATCH /api/v1/users/{id}`: the fields to change.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "user_patch_not_empty"))]
pub struct UserPatch {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// A new email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// Disable (no profile, no key link) or enable the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

fn user_patch_not_empty(patch: &UserPatch) -> Result<(), ValidationError> {
    if patch.name.is_none() && patch.email.is_none() && patch.disabled.is_none() {
        return Err(field_error(
            "body",
            "empty_patch",
            "nothing to change: give at least one field",
        ));
    }
    Ok(())
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The id.
    pub id: UserId,
    /// The organization the user belongs to.
    pub org_id: OrgId,
    /// The name.
    pub name: Name,
    /// The email address.
    #[serde(default)]
    pub email: Option<Email>,
    /// Disabled users get no profile and no key link.
    pub disabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `POST /api/v1/users/{id}/devices`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreate {
    /// The device's name.
    pub name: Name,
    /// The device's own WireGuard public key. Leave it out to have the
    /// server generate a key pair; the private key is then shown once, in
    /// the answer, and put into the device's profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<WgKey>,
}

/// A device's static addresses on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAddress {
    /// The server.
    pub server_id: ServerId,
    /// The IPv4 address.
    pub address: Ipv4Addr,
    /// The IPv6 address, when the server has an IPv6 network.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
}

/// A device.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The id.
    pub id: DeviceId,
    /// Whose.
    pub user_id: UserId,
    /// The name.
    pub name: Name,
    /// Its WireGuard public key.
    pub public_key: WgKey,
    /// Whether the server generated the key pair (and so puts the private
    /// key into the device's profiles).
    pub key_generated: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its addresses on every server its organization is attached to.
    pub addresses: Vec<DeviceAddress>,
}

/// The answer to `POST /api/v1/users/{id}/devices`: the device and, when
/// the server generated the key pair, its private key. This is the only
/// answer that ever carries it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCreated {
    /// The id.
    pub id: DeviceId,
    /// Whose.
    pub user_id: UserId,
    /// The name.
    pub name: Name,
    /// Its WireGuard public key.
    pub public_key: WgKey,
    /// Whether the server generated the key pair.
    pub key_generated: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its addresses on every server its organization is attached to.
    pub addresses: Vec<DeviceAddress>,
    /// The generated private key; absent when the device brought its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<WgKey>,
}

/// The longest a key link may live: 30 days.
pub const LINK_MAX_SECONDS: u32 = 30 * 24 * 3600;

/// `POST /api/v1/users/{id}/links`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCreate {
    /// Seconds until the link stops working: 60 to 2592000 (30 days).
    #[validate(range(min = 60, max = 2_592_000, message = "must be 60 to 2592000 seconds (30 days)"))]
    pub expires_in: u32,
    /// How many times the page may be opened: 1 to 100.
    #[validate(range(min = 1, max = 100, message = "must be 1 to 100"))]
    pub max_uses: u32,
}

/// A new key link. The URL holds the only copy of its token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The page's address; give it to the user.
    pub url: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// How many times it may be opened.
    pub max_uses: u32,
}

/// A page of users.
pub type UserPage = Page<User>;
/// A page of devices.
pub type DevicePage = Page<Device>;
