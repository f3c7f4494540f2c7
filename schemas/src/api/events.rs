//! `GET /api/v1/events`: what the console hears about changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One committed change, as the `data` of a server-sent event. It names
/// what changed and never carries the changed values: a console that cares
/// reads the resource again, through the same access checks as any read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    /// The kind of resource: `org`, `user`, `device`, `server`, `admin`,
    /// `token`, `settings`.
    pub kind: String,
    /// The audit action that committed it, e.g. `device.create`.
    pub action: String,
    /// The resource's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
