//! Stored configuration rows, which arrive as JSON objects keyed by column name, as display
//! text: the Site page's tables, the diff of each operation and the rows that block a rollback.

use backend::changes::preview::PreviewItem;
use backend::changes::store::RollbackConflict;
use backend::changes::Action;
use backend::facility::{Kind, SiteConfiguration, WEEKDAYS};
use serde_json::{Map, Value};

use crate::changes::{ConflictRow, Fact, FieldChange, OperationView, RowTable, SiteView};

/// Shown for a database NULL and an empty list.
const NONE_TEXT: &str = "—";

/// Renders a stored value as text: lists joined by commas, yes or no for booleans, and
/// opening hours as `mon 08:00–18:00`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => NONE_TEXT.to_string(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => NONE_TEXT.to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.is_empty() => NONE_TEXT.to_string(),
        Value::Object(map) => weekly_hours_text(map).unwrap_or_else(|| value.to_string()),
    }
}

/// Renders `{"mon": {"open": "08:00", "close": "18:00"}, …}` in weekday order, or `None` when
/// `map` has another shape.
fn weekly_hours_text(map: &Map<String, Value>) -> Option<String> {
    let mut days = Vec::new();
    for day in WEEKDAYS {
        if let Some(hours) = map.get(day) {
            days.push(format!("{day} {}", hours_text(hours)?));
        }
    }
    (days.len() == map.len()).then(|| days.join(", "))
}

fn hours_text(hours: &Value) -> Option<String> {
    let open = hours.get("open")?.as_str()?;
    let close = hours.get("close")?.as_str()?;
    Some(format!("{open}–{close}"))
}

/// Turns a column name into a heading, e.g. `permissible_distance_m` into
/// `Permissible distance (m)`.
fn column_label(column: &str) -> String {
    let label = match column {
        "open_24x7" => "Open 24/7".to_string(),
        "permissible_distance_m" => "Permissible distance (m)".to_string(),
        "frequency_minutes" => "Frequency (minutes)".to_string(),
        "gps_enabled" => "GPS enabled".to_string(),
        other => other.replace('_', " "),
    };
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => label,
    }
}

/// Columns of a kind as the pages show them: the key without `site_code` (the page already
/// names the site), then the data columns.
fn display_columns(kind: Kind) -> Vec<&'static str> {
    let table = kind.table();
    table
        .key
        .iter()
        .chain(table.data)
        .copied()
        .filter(|column| *column != "site_code")
        .collect()
}

fn row_table(kind: Kind, rows: &[Value]) -> RowTable {
    let columns = display_columns(kind);
    RowTable {
        columns: columns.iter().map(|column| column_label(column)).collect(),
        rows: rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|column| text(row.get(*column).unwrap_or(&Value::Null)))
                    .collect()
            })
            .collect(),
    }
}

/// Converts a site's configuration for the Site page.
pub fn site_view(configuration: SiteConfiguration) -> SiteView {
    let site = &configuration.site;
    let field = |column: &str| text(site.get(column).unwrap_or(&Value::Null));
    let facts = ["kind", "timezone", "address", "max_users", "security_level"]
        .into_iter()
        .map(|column| Fact {
            label: column_label(column),
            value: field(column),
        })
        .collect();

    let security = configuration.security_settings.as_ref().map(|settings| {
        let on_off = |column: &str| match settings.get(column).and_then(Value::as_bool) {
            Some(true) => "on".to_string(),
            Some(false) => "off".to_string(),
            None => NONE_TEXT.to_string(),
        };
        vec![
            Fact {
                label: "GPS".to_string(),
                value: on_off("gps_enabled"),
            },
            Fact {
                label: "Sleeping guard detection".to_string(),
                value: on_off("sleeping_guard_detection"),
            },
            Fact {
                label: "Permissible distance".to_string(),
                value: format!(
                    "{} m",
                    text(
                        settings
                            .get("permissible_distance_m")
                            .unwrap_or(&Value::Null)
                    )
                ),
            },
        ]
    });

    SiteView {
        code: field("code"),
        name: field("name"),
        facts,
        hours: opening_hours(site),
        security,
        zones: row_table(Kind::Zone, &configuration.zones),
        assets: row_table(Kind::Asset, &configuration.assets),
        checkpoints: row_table(Kind::Checkpoint, &configuration.checkpoints),
        shifts: row_table(Kind::Shift, &configuration.shifts),
        maintenance_schedules: row_table(
            Kind::MaintenanceSchedule,
            &configuration.maintenance_schedules,
        ),
    }
}

/// Lists the opening hours per weekday; a weekday missing from `weekly_hours` is closed.
fn opening_hours(site: &Value) -> Vec<Fact> {
    if site.get("open_24x7").and_then(Value::as_bool) == Some(true) {
        return vec![Fact {
            label: "Every day".to_string(),
            value: "open 24/7".to_string(),
        }];
    }
    let names = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let hours = site.get("weekly_hours");
    WEEKDAYS
        .iter()
        .zip(names)
        .map(|(day, name)| Fact {
            label: name.to_string(),
            value: hours
                .and_then(|hours| hours.get(*day))
                .and_then(hours_text)
                .unwrap_or_else(|| "closed".to_string()),
        })
        .collect()
}

/// Formats a natural key in the kind's key order, e.g. `site_code E2E-01, code GATE-1`.
fn key_text(kind: Kind, key: &Map<String, Value>) -> String {
    kind.table()
        .key
        .iter()
        .map(|column| {
            let value = key.get(*column).map(text).unwrap_or_default();
            format!("{column} {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Says what an operation does in plain words, e.g. `Create zone GATE-1 at site E2E-01`.
pub(crate) fn summary(kind: Kind, action: Action, key: &Map<String, Value>) -> String {
    let verb = match action {
        Action::Create => "Create",
        Action::Update => "Update",
        Action::Delete => "Delete",
    };
    let noun = kind.as_str().replace('_', " ");
    let get = |column: &str| key.get(column).and_then(Value::as_str);
    let main = match (get("category"), get("code").or(get("name"))) {
        (Some(category), Some(code)) => Some(format!("{category}/{code}")),
        (_, main) => main.map(str::to_string),
    };
    match (main, get("site_code")) {
        (Some(main), Some(site)) => format!("{verb} {noun} {main} at site {site}"),
        (Some(main), None) => format!("{verb} {noun} {main}"),
        (None, Some(site)) => format!("{verb} {noun} of site {site}"),
        (None, None) => format!("{verb} {noun}"),
    }
}

/// Columns of `rows` outside the kind's key: the kind's data columns in table order, then any
/// other column in name order.
fn data_columns(kind: Kind, rows: &[Option<&Map<String, Value>>]) -> Vec<String> {
    let table = kind.table();
    let mut columns: Vec<String> = table.data.iter().map(|column| column.to_string()).collect();
    let mut extra: Vec<String> = rows
        .iter()
        .flatten()
        .flat_map(|row| row.keys())
        .filter(|column| !table.key.contains(&column.as_str()))
        .filter(|column| !table.data.contains(&column.as_str()))
        .cloned()
        .collect();
    extra.sort();
    extra.dedup();
    columns.extend(extra);
    columns
}

/// Converts one operation's preview into its diff: for update the changed fields only, for
/// create the new row, for delete the old row.
pub(super) fn operation_view(item: &PreviewItem) -> OperationView {
    let operation = &item.operation;
    let kind = operation.kind;
    let before = item.before.as_ref().and_then(Value::as_object);
    // An invalid operation has no computed row after it, so the requested fields stand in.
    let after = item
        .after
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&operation.fields);
    let fields = data_columns(kind, &[before, Some(after), Some(&operation.fields)])
        .into_iter()
        .filter_map(|column| {
            let old = before.and_then(|row| row.get(&column));
            let new = after.get(&column);
            let (before_text, after_text) = match operation.action {
                Action::Create => (String::new(), text(new?)),
                Action::Delete => (text(old?), String::new()),
                Action::Update if old == new || new.is_none() => return None,
                Action::Update => (old.map(text).unwrap_or_default(), text(new?)),
            };
            Some(FieldChange {
                field: column_label(&column),
                before: before_text,
                after: after_text,
            })
        })
        .collect();

    OperationView {
        seq: item.seq,
        kind: kind.as_str().to_string(),
        action: operation.action.as_str().to_string(),
        key: key_text(kind, &operation.key),
        summary: summary(kind, operation.action, &operation.key),
        risk: format!("{:.2}", item.risk),
        fields,
        errors: item.errors.clone(),
    }
}

/// Lists the fields in which the row as the apply left it differs from the row now.
pub(super) fn conflict_row(conflict: &RollbackConflict) -> ConflictRow {
    let key = conflict
        .key
        .as_object()
        .map(|key| {
            key.iter()
                .map(|(column, value)| format!("{column} {}", text(value)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| conflict.key.to_string());
    let expected = conflict.expected.as_ref().and_then(Value::as_object);
    let current = conflict.current.as_ref().and_then(Value::as_object);
    let lines = |row: Option<&Map<String, Value>>, missing: &str, columns: &[String]| match row {
        None => vec![missing.to_string()],
        Some(row) => columns
            .iter()
            .map(|column| {
                let value = row.get(column).map(text).unwrap_or_default();
                format!("{column}: {value}")
            })
            .collect(),
    };

    let mut columns: Vec<String> = expected
        .into_iter()
        .chain(current)
        .flat_map(|row| row.keys().cloned())
        .collect();
    columns.sort();
    columns.dedup();
    // Both rows exist: only the differing fields matter. One is missing: the other shows whole.
    if let (Some(expected), Some(current)) = (expected, current) {
        columns.retain(|column| expected.get(column) != current.get(column));
    }
    ConflictRow {
        kind: conflict.kind.clone(),
        key,
        expected: lines(expected, "no row (the change set deleted it)", &columns),
        current: lines(current, "no row (deleted since the apply)", &columns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn text_renders_each_json_type() {
        let cases = [
            (json!(null), "—"),
            (json!(true), "yes"),
            (json!(false), "no"),
            (json!(50), "50"),
            (json!("E2E site"), "E2E site"),
            (json!([]), "—"),
            (json!(["mon", "tue"]), "mon, tue"),
            (json!({}), "—"),
            (
                json!({"tue": {"open": "09:00", "close": "17:00"}, "mon": {"open": "08:00", "close": "18:00"}}),
                "mon 08:00–18:00, tue 09:00–17:00",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(text(&value), expected, "text of {value}");
        }
    }

    #[test]
    fn summary_names_kind_key_and_site() {
        let cases = [
            (
                Kind::Site,
                Action::Create,
                json!({"code": "E2E-01"}),
                "Create site E2E-01",
            ),
            (
                Kind::SecuritySettings,
                Action::Update,
                json!({"site_code": "E2E-01"}),
                "Update security settings of site E2E-01",
            ),
            (
                Kind::Zone,
                Action::Delete,
                json!({"site_code": "WH-01", "code": "GATE-1"}),
                "Delete zone GATE-1 at site WH-01",
            ),
            (
                Kind::LookupType,
                Action::Create,
                json!({"category": "incident", "code": "fire"}),
                "Create lookup type incident/fire",
            ),
        ];
        for (kind, action, key, expected) in cases {
            assert_eq!(summary(kind, action, &object(key)), expected);
        }
    }

    fn preview_item(action: &str, fields: Value, before: Value, after: Value) -> PreviewItem {
        serde_json::from_value(json!({
            "seq": 1,
            "operation": {
                "kind": "site",
                "action": action,
                "key": {"code": "E2E-01"},
                "fields": fields,
            },
            "before": before,
            "after": after,
            "risk": 0.2,
            "errors": [],
        }))
        .expect("a valid preview item")
    }

    #[test]
    fn update_diff_shows_changed_fields_only() {
        let before = json!({"code": "E2E-01", "name": "Old", "max_users": 50, "open_24x7": true});
        let after = json!({"code": "E2E-01", "name": "New", "max_users": 50, "open_24x7": true});
        let item = preview_item("update", json!({"name": "New"}), before, after);
        let view = operation_view(&item);
        assert_eq!(
            view.fields,
            vec![FieldChange {
                field: "Name".to_string(),
                before: "Old".to_string(),
                after: "New".to_string(),
            }]
        );
        assert_eq!(view.key, "code E2E-01");
        assert_eq!(view.risk, "0.20");
    }

    #[test]
    fn create_and_delete_diffs_show_the_whole_row() {
        let row = json!({"code": "E2E-01", "name": "E2E site", "max_users": 50});
        let created = operation_view(&preview_item(
            "create",
            json!({"name": "E2E site", "max_users": 50}),
            json!(null),
            row.clone(),
        ));
        let created_fields: Vec<(&str, &str)> = created
            .fields
            .iter()
            .map(|change| (change.field.as_str(), change.after.as_str()))
            .collect();
        assert_eq!(
            created_fields,
            vec![("Name", "E2E site"), ("Max users", "50")]
        );
        assert!(created.fields.iter().all(|change| change.before.is_empty()));

        let deleted = operation_view(&preview_item("delete", json!({}), row, json!(null)));
        assert_eq!(deleted.fields.len(), 2);
        assert!(deleted.fields.iter().all(|change| change.after.is_empty()));
        assert_eq!(deleted.fields[0].before, "E2E site");
    }

    #[test]
    fn conflict_lists_differing_fields() {
        let conflict = RollbackConflict {
            kind: "site".to_string(),
            key: json!({"code": "E2E-01"}),
            expected: Some(json!({"code": "E2E-01", "name": "E2E site", "max_users": 50})),
            current: Some(json!({"code": "E2E-01", "name": "Renamed", "max_users": 50})),
        };
        let row = conflict_row(&conflict);
        assert_eq!(row.key, "code E2E-01");
        assert_eq!(row.expected, vec!["name: E2E site"]);
        assert_eq!(row.current, vec!["name: Renamed"]);

        let deleted = RollbackConflict {
            current: None,
            ..conflict
        };
        let row = conflict_row(&deleted);
        assert_eq!(row.current, vec!["no row (deleted since the apply)"]);
        assert_eq!(row.expected.len(), 3);
    }

    #[test]
    fn site_view_lists_hours_security_and_rows() {
        let configuration = SiteConfiguration {
            site: json!({
                "code": "WH-01", "name": "Warehouse", "kind": "warehouse", "timezone": "UTC",
                "address": null, "max_users": 20, "open_24x7": false,
                "weekly_hours": {"mon": {"open": "08:00", "close": "18:00"}},
                "security_level": "basic",
            }),
            security_settings: Some(json!({
                "site_code": "WH-01", "gps_enabled": false, "sleeping_guard_detection": true,
                "permissible_distance_m": 30,
            })),
            zones: vec![json!({
                "site_code": "WH-01", "code": "GATE-1", "name": "Main gate", "kind": "gate",
                "importance": 5, "risk_level": "high",
            })],
            assets: vec![],
            checkpoints: vec![],
            shifts: vec![],
            maintenance_schedules: vec![],
        };
        let view = site_view(configuration);

        assert_eq!(view.code, "WH-01");
        assert_eq!(view.hours.len(), 7);
        assert_eq!(view.hours[0].value, "08:00–18:00");
        assert_eq!(view.hours[1].value, "closed");
        let security = view.security.expect("security settings");
        assert_eq!(security[0].value, "off");
        assert_eq!(security[2].value, "30 m");
        assert_eq!(
            view.zones.columns,
            vec!["Code", "Name", "Kind", "Importance", "Risk level"]
        );
        assert_eq!(
            view.zones.rows,
            vec![vec!["GATE-1", "Main gate", "gate", "5", "high"]]
        );
        assert!(view.assets.rows.is_empty());
    }
}
