//! Change sets: ordered, typed operations on the facility configuration, their dry-run preview,
//! rule-based risk and approval tier, decisions, apply and rollback.
//!
//! - [`preview`] validates operations against the current configuration as each earlier
//!   operation of the set would leave it, and shows before and after per operation.
//! - [`store`] keeps change sets and decisions: one person counts once per revision, editing
//!   starts a new revision, requests expire after 7 days, any rejection ends the request.
//! - [`apply`] applies a change set in one transaction under the tenant's configuration lock,
//!   recording each operation, and builds rollbacks from those records.

pub mod apply;
pub mod preview;
pub mod risk;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::facility::Kind;

/// The change an operation makes to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Insert a new row.
    Create,
    /// Change some fields of an existing row.
    Update,
    /// Remove a row.
    Delete,
}

impl Action {
    /// Returns the stable name stored in change records.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One typed operation on the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// The kind of row.
    pub kind: Kind,
    /// Create, update or delete.
    pub action: Action,
    /// The natural key, e.g. `{"site_code": "WH-01", "code": "GATE-1"}`.
    #[schema(value_type = Object)]
    pub key: Map<String, Value>,
    /// For create, every other column; for update, the columns that change; empty for delete.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// Most operations one change set may hold.
pub const MAX_OPERATIONS: usize = 200;

/// How long a change set waits for decisions before it expires.
pub const REQUEST_LIFETIME: time::Duration = time::Duration::days(7);

/// Kind of the job that applies a change set.
pub const APPLY_KIND: &str = "change_set.apply";
