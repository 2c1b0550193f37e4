//! Dry-run preview: validates each operation against the configuration as the earlier operations
//! of the same set would leave it, and shows the row before and after.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::risk::{self, Assessment};
use super::{Action, Operation, MAX_OPERATIONS};
use crate::facility::{self, Kind};

/// One operation's preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewItem {
    /// Position in the set, from 1.
    pub seq: usize,
    /// The operation.
    pub operation: Operation,
    /// The row before, when it exists.
    pub before: Option<Value>,
    /// The row after, unless deleted.
    pub after: Option<Value>,
    /// The operation's own risk.
    pub risk: f64,
    /// Validation errors, empty when valid.
    pub errors: Vec<String>,
}

/// A change set's preview and assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// One item per operation, in order.
    pub items: Vec<PreviewItem>,
    /// True when no operation has errors.
    pub valid: bool,
    /// Risk score and tier.
    pub assessment: Assessment,
}

impl Preview {
    /// Describes every invalid operation as "operation N: error; error", joined by " | ".
    pub fn problems(&self) -> String {
        self.items
            .iter()
            .filter(|item| !item.errors.is_empty())
            .map(|item| format!("operation {}: {}", item.seq, item.errors.join("; ")))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Rows as the set has left them so far: `None` marks a row deleted by an earlier operation.
#[derive(Default)]
struct Overlay {
    rows: HashMap<(Kind, String), Option<Map<String, Value>>>,
}

fn key_text(kind: Kind, key: &Map<String, Value>) -> String {
    kind.table()
        .key
        .iter()
        .map(|column| key.get(*column).and_then(Value::as_str).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

impl Overlay {
    async fn get(
        &self,
        conn: &mut PgConnection,
        tenant_id: Uuid,
        kind: Kind,
        key: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, sqlx::Error> {
        if let Some(row) = self.rows.get(&(kind, key_text(kind, key))) {
            return Ok(row.clone());
        }
        facility::read_row(conn, tenant_id, kind, key).await
    }

    fn set(&mut self, kind: Kind, key: &Map<String, Value>, row: Option<Map<String, Value>>) {
        self.rows.insert((kind, key_text(kind, key)), row);
    }
}

/// Validates `operations` in order and previews them; database errors aside, problems are
/// reported per operation, never as a failure of the whole call.
pub async fn preview(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    operations: &[Operation],
    min_confidence: Option<f64>,
) -> Result<Preview, sqlx::Error> {
    let mut overlay = Overlay::default();
    let mut items = Vec::with_capacity(operations.len());
    for (index, operation) in operations.iter().enumerate() {
        let item = preview_one(conn, tenant_id, &mut overlay, index + 1, operation).await?;
        items.push(item);
    }
    let risks: Vec<f64> = items.iter().map(|item| item.risk).collect();
    let valid = !operations.is_empty()
        && operations.len() <= MAX_OPERATIONS
        && items.iter().all(|item| item.errors.is_empty());
    Ok(Preview {
        items,
        valid,
        assessment: risk::assess(&risks, min_confidence),
    })
}

async fn preview_one(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    overlay: &mut Overlay,
    seq: usize,
    operation: &Operation,
) -> Result<PreviewItem, sqlx::Error> {
    let kind = operation.kind;
    let table = kind.table();
    let mut errors = Vec::new();

    // The key names exactly the kind's key columns, each a string.
    let mut key = Map::new();
    for column in table.key {
        match operation.key.get(*column).and_then(Value::as_str) {
            Some(value) => {
                key.insert(column.to_string(), Value::String(value.to_string()));
            }
            None => errors.push(format!(
                "key.{column} is missing; {} keys are {}",
                kind.as_str(),
                table.key.join(", ")
            )),
        }
    }
    for column in operation.key.keys() {
        if !table.key.contains(&column.as_str()) {
            errors.push(format!(
                "key.{column} is not a key column of {}",
                kind.as_str()
            ));
        }
    }
    for column in operation.fields.keys() {
        if table.key.contains(&column.as_str()) {
            errors.push(format!(
                "fields.{column} is part of the key; put it in `key`"
            ));
        } else if !table.data.contains(&column.as_str()) {
            errors.push(format!(
                "fields.{column} is not a field of {}; fields are {}",
                kind.as_str(),
                table.data.join(", ")
            ));
        }
    }
    if !errors.is_empty() {
        return Ok(PreviewItem {
            seq,
            operation: operation.clone(),
            before: None,
            after: None,
            risk: risk::operation_risk(operation, None),
            errors,
        });
    }

    let before = overlay.get(conn, tenant_id, kind, &key).await?;
    let after = match operation.action {
        Action::Create => {
            if before.is_some() {
                errors.push(format!(
                    "{} {} already exists",
                    kind.as_str(),
                    key_text(kind, &key)
                ));
            }
            let mut row = key.clone();
            row.extend(operation.fields.clone());
            Some(row)
        }
        Action::Update => match &before {
            None => {
                errors.push(format!(
                    "{} {} does not exist",
                    kind.as_str(),
                    key_text(kind, &key)
                ));
                None
            }
            Some(current) => {
                if operation.fields.is_empty() {
                    errors.push("an update needs at least one field in `fields`".to_string());
                }
                let mut row = current.clone();
                row.extend(operation.fields.clone());
                Some(row)
            }
        },
        Action::Delete => {
            if before.is_none() {
                errors.push(format!(
                    "{} {} does not exist",
                    kind.as_str(),
                    key_text(kind, &key)
                ));
            }
            if !operation.fields.is_empty() {
                errors.push("a delete takes no `fields`".to_string());
            }
            None
        }
    };

    if let Some(row) = &after {
        if let Err(error) = kind.validate_row(row) {
            errors.push(error);
        } else {
            check_references(conn, tenant_id, overlay, kind, row, &mut errors).await?;
        }
    }
    if operation.action == Action::Delete && before.is_some() {
        check_dependents(conn, tenant_id, overlay, kind, &key, &mut errors).await?;
    }

    let before_value = before.clone().map(Value::Object);
    let risk = risk::operation_risk(operation, before_value.as_ref());
    if errors.is_empty() {
        overlay.set(kind, &key, after.clone());
    }
    Ok(PreviewItem {
        seq,
        operation: operation.clone(),
        before: before_value,
        after: after.map(Value::Object),
        risk,
        errors,
    })
}

fn string_field<'a>(row: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    row.get(field).and_then(Value::as_str)
}

fn key_of(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(column, value)| (column.to_string(), Value::String(value.to_string())))
        .collect()
}

/// Checks that the rows a row points at exist (as the set has left them).
async fn check_references(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    overlay: &Overlay,
    kind: Kind,
    row: &Map<String, Value>,
    errors: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    let Some(site) = string_field(row, "site_code") else {
        return Ok(());
    };
    let site_key = key_of(&[("code", site)]);
    if overlay
        .get(conn, tenant_id, Kind::Site, &site_key)
        .await?
        .is_none()
    {
        errors.push(format!("site {site} does not exist; create the site first"));
        return Ok(());
    }
    if matches!(kind, Kind::Asset | Kind::Checkpoint) {
        if let Some(zone) = string_field(row, "zone_code") {
            let zone_key = key_of(&[("site_code", site), ("code", zone)]);
            if overlay
                .get(conn, tenant_id, Kind::Zone, &zone_key)
                .await?
                .is_none()
            {
                errors.push(format!(
                    "zone {site}/{zone} does not exist; create the zone first"
                ));
            }
        }
    }
    if kind == Kind::MaintenanceSchedule {
        if let Some(asset) = string_field(row, "asset_code") {
            let asset_key = key_of(&[("site_code", site), ("code", asset)]);
            if overlay
                .get(conn, tenant_id, Kind::Asset, &asset_key)
                .await?
                .is_none()
            {
                errors.push(format!(
                    "asset {site}/{asset} does not exist; create the asset first"
                ));
            }
        }
    }
    Ok(())
}

/// Checks that no remaining row points at a row being deleted.
async fn check_dependents(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    overlay: &Overlay,
    kind: Kind,
    key: &Map<String, Value>,
    errors: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    // (child kind, child column pointing at the parent, parent key column it matches)
    let links: &[(Kind, &str, &str)] = match kind {
        Kind::Site => &[
            (Kind::SecuritySettings, "site_code", "code"),
            (Kind::Zone, "site_code", "code"),
            (Kind::Asset, "site_code", "code"),
            (Kind::Checkpoint, "site_code", "code"),
            (Kind::Shift, "site_code", "code"),
            (Kind::MaintenanceSchedule, "site_code", "code"),
        ],
        Kind::Zone => &[
            (Kind::Asset, "zone_code", "code"),
            (Kind::Checkpoint, "zone_code", "code"),
        ],
        Kind::Asset => &[(Kind::MaintenanceSchedule, "asset_code", "code")],
        _ => &[],
    };
    for (child, column, parent_column) in links {
        let parent_value = string_field(key, parent_column).unwrap_or_default();
        let table = child.table();
        let site_filter = if *column == "site_code" {
            String::new()
        } else {
            " AND t.site_code = $3".to_string()
        };
        let sql = format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'tenant_id'), '[]') FROM {} t \
              WHERE t.tenant_id = $1 AND t.{column} = $2{site_filter}",
            table.name
        );
        let mut query = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(parent_value);
        if !site_filter.is_empty() {
            query = query.bind(string_field(key, "site_code").unwrap_or_default());
        }
        let rows: Value = query.fetch_one(&mut *conn).await?;
        let mut remaining = Vec::new();
        for child_row in rows.as_array().cloned().unwrap_or_default() {
            let Value::Object(child_row) = child_row else {
                continue;
            };
            let child_key: Map<String, Value> = table
                .key
                .iter()
                .filter_map(|column| {
                    child_row
                        .get(*column)
                        .map(|value| (column.to_string(), value.clone()))
                })
                .collect();
            let deleted = matches!(
                overlay.rows.get(&(*child, key_text(*child, &child_key))),
                Some(None)
            );
            if !deleted {
                remaining.push(key_text(*child, &child_key));
            }
        }
        // Rows created earlier in this set that point at the parent.
        for ((created_kind, created_key), row) in &overlay.rows {
            let points_here = row
                .as_ref()
                .and_then(|row| string_field(row, column))
                .is_some_and(|value| value == parent_value);
            if *created_kind == *child && points_here && !remaining.contains(created_key) {
                remaining.push(created_key.clone());
            }
        }
        if !remaining.is_empty() {
            errors.push(format!(
                "{} {} is still used by {} {}; delete or move those first",
                kind.as_str(),
                key_text(kind, key),
                child.as_str(),
                remaining.join(", ")
            ));
        }
    }
    Ok(())
}
