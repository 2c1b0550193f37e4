//! The facility configuration: one typed row per kind, the table behind each kind, and reading
//! a site's whole configuration.
//!
//! Rows travel as JSON objects whose keys are the table's column names (without `tenant_id`).
//! Each kind has a Rust type that parses such an object strictly (unknown fields, wrong types
//! and out-of-range values fail) and the database repeats the range checks.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// A kind of configuration row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A site (business unit).
    Site,
    /// A site's security settings.
    SecuritySettings,
    /// A zone of a site.
    Zone,
    /// An asset of a site, optionally in a zone.
    Asset,
    /// A guard tour checkpoint in a zone.
    Checkpoint,
    /// A staffing shift.
    Shift,
    /// A maintenance schedule for an asset or an asset kind.
    MaintenanceSchedule,
    /// A tenant-wide lookup value.
    LookupType,
}

/// The storage of a kind: its table, key columns and data columns.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    /// Natural key columns, `tenant_id` excluded.
    pub key: &'static [&'static str],
    /// The other columns.
    pub data: &'static [&'static str],
}

impl Kind {
    /// Every kind, parents before children.
    pub const ALL: [Kind; 8] = [
        Kind::Site,
        Kind::SecuritySettings,
        Kind::Zone,
        Kind::Asset,
        Kind::Checkpoint,
        Kind::Shift,
        Kind::MaintenanceSchedule,
        Kind::LookupType,
    ];

    /// Returns the stable name used in operations and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Site => "site",
            Kind::SecuritySettings => "security_settings",
            Kind::Zone => "zone",
            Kind::Asset => "asset",
            Kind::Checkpoint => "checkpoint",
            Kind::Shift => "shift",
            Kind::MaintenanceSchedule => "maintenance_schedule",
            Kind::LookupType => "lookup_type",
        }
    }

    /// Returns the table that stores the kind.
    pub fn table(self) -> Table {
        match self {
            Kind::Site => Table {
                name: "sites",
                key: &["code"],
                data: &[
                    "name",
                    "kind",
                    "timezone",
                    "address",
                    "max_users",
                    "open_24x7",
                    "weekly_hours",
                    "security_level",
                ],
            },
            Kind::SecuritySettings => Table {
                name: "security_settings",
                key: &["site_code"],
                data: &[
                    "gps_enabled",
                    "sleeping_guard_detection",
                    "permissible_distance_m",
                ],
            },
            Kind::Zone => Table {
                name: "zones",
                key: &["site_code", "code"],
                data: &["name", "kind", "importance", "risk_level"],
            },
            Kind::Asset => Table {
                name: "assets",
                key: &["site_code", "code"],
                data: &["name", "kind", "zone_code", "criticality"],
            },
            Kind::Checkpoint => Table {
                name: "checkpoints",
                key: &["site_code", "code"],
                data: &[
                    "zone_code",
                    "verification",
                    "frequency_minutes",
                    "questions",
                    "severity",
                ],
            },
            Kind::Shift => Table {
                name: "shifts",
                key: &["site_code", "name"],
                data: &["start_time", "end_time", "weekdays", "people_count", "role"],
            },
            Kind::MaintenanceSchedule => Table {
                name: "maintenance_schedules",
                key: &["site_code", "code"],
                data: &[
                    "asset_kind",
                    "asset_code",
                    "task",
                    "interval_count",
                    "interval_unit",
                    "checklist",
                    "reference",
                ],
            },
            Kind::LookupType => Table {
                name: "lookup_types",
                key: &["category", "code"],
                data: &["name"],
            },
        }
    }

    /// Parses a whole row of this kind strictly and checks its ranges; the error names the
    /// field and the rule.
    pub fn validate_row(self, row: &Map<String, Value>) -> Result<(), String> {
        let value = Value::Object(row.clone());
        match self {
            Kind::Site => parse::<SiteRow>(value)?.check(),
            Kind::SecuritySettings => parse::<SecuritySettingsRow>(value)?.check(),
            Kind::Zone => parse::<ZoneRow>(value)?.check(),
            Kind::Asset => parse::<AssetRow>(value)?.check(),
            Kind::Checkpoint => parse::<CheckpointRow>(value)?.check(),
            Kind::Shift => parse::<ShiftRow>(value)?.check(),
            Kind::MaintenanceSchedule => parse::<MaintenanceRow>(value)?.check(),
            Kind::LookupType => parse::<LookupRow>(value)?.check(),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|error| error.to_string())
}

fn check_code(field: &str, code: &str) -> Result<(), String> {
    let valid = !code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_' || ch == '-')
        && !code.starts_with(['_', '-']);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{field} '{code}' must be 1-32 characters of A-Z, 0-9, '_' and '-', starting with a \
             letter or digit"
        ))
    }
}

fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} {value} is out of range: use {min} to {max}"
        ))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(format!(
            "{field} must have 1 to {max} characters (has {chars})"
        ));
    }
    Ok(())
}

fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} '{value}' is not allowed: use one of {}",
            allowed.join(", ")
        ))
    }
}

fn check_hhmm(field: &str, value: &str) -> Result<(), String> {
    let valid = value.len() == 5
        && value.as_bytes()[2] == b':'
        && value[..2].parse::<u8>().is_ok_and(|hour| hour < 24)
        && value[3..].parse::<u8>().is_ok_and(|minute| minute < 60)
        && value[..2]
            .chars()
            .chain(value[3..].chars())
            .all(|ch| ch.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{field} '{value}' must be a 24-hour time HH:MM, e.g. 09:30"
        ))
    }
}

/// Weekday names used by shifts and opening hours.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A site row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRow {
    code: String,
    name: String,
    kind: String,
    timezone: String,
    address: Option<String>,
    max_users: i64,
    open_24x7: bool,
    weekly_hours: Map<String, Value>,
    security_level: String,
}

impl SiteRow {
    fn check(&self) -> Result<(), String> {
        check_code("code", &self.code)?;
        check_text("name", &self.name, 200)?;
        check_one_of(
            "kind",
            &self.kind,
            &[
                "office",
                "warehouse",
                "retail",
                "manufacturing",
                "bank_branch",
                "atm",
                "industrial",
                "mixed_use",
                "hospital",
                "other",
            ],
        )?;
        check_text("timezone", &self.timezone, 64)?;
        if let Some(address) = &self.address {
            check_text("address", address, 500)?;
        }
        check_range("max_users", self.max_users, 1, 10_000)?;
        check_one_of(
            "security_level",
            &self.security_level,
            &["basic", "enhanced", "high"],
        )?;
        if self.open_24x7 && !self.weekly_hours.is_empty() {
            return Err("weekly_hours must be empty when open_24x7 is true".to_string());
        }
        for (day, hours) in &self.weekly_hours {
            check_one_of("weekly_hours day", day, &WEEKDAYS)?;
            let open = hours.get("open").and_then(Value::as_str).unwrap_or("");
            let close = hours.get("close").and_then(Value::as_str).unwrap_or("");
            check_hhmm(&format!("weekly_hours.{day}.open"), open)?;
            check_hhmm(&format!("weekly_hours.{day}.close"), close)?;
            if hours.as_object().is_none_or(|object| object.len() != 2) {
                return Err(format!(
                    "weekly_hours.{day} must be {{\"open\": \"HH:MM\", \"close\": \"HH:MM\"}}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecuritySettingsRow {
    site_code: String,
    #[allow(dead_code)]
    gps_enabled: bool,
    #[allow(dead_code)]
    sleeping_guard_detection: bool,
    permissible_distance_m: i64,
}

impl SecuritySettingsRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_range(
            "permissible_distance_m",
            self.permissible_distance_m,
            10,
            1000,
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneRow {
    site_code: String,
    code: String,
    name: String,
    kind: String,
    importance: i64,
    risk_level: String,
}

impl ZoneRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_code("code", &self.code)?;
        check_text("name", &self.name, 200)?;
        check_one_of(
            "kind",
            &self.kind,
            &[
                "gate",
                "perimeter",
                "lobby",
                "vault",
                "server_room",
                "cash_room",
                "atm_area",
                "parking",
                "loading_dock",
                "warehouse_floor",
                "office_floor",
                "plant_room",
                "roof",
                "other",
            ],
        )?;
        check_range("importance", self.importance, 1, 5)?;
        check_one_of("risk_level", &self.risk_level, &["low", "medium", "high"])
    }
}

/// Asset kinds, shared by assets and maintenance schedules.
pub const ASSET_KINDS: [&str; 12] = [
    "camera",
    "nvr",
    "access_reader",
    "fire_extinguisher",
    "fire_alarm_panel",
    "sprinkler_valve",
    "generator",
    "ups",
    "hvac_unit",
    "elevator",
    "pump",
    "other",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetRow {
    site_code: String,
    code: String,
    name: String,
    kind: String,
    zone_code: Option<String>,
    criticality: String,
}

impl AssetRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_code("code", &self.code)?;
        check_text("name", &self.name, 200)?;
        check_one_of("kind", &self.kind, &ASSET_KINDS)?;
        if let Some(zone) = &self.zone_code {
            check_code("zone_code", zone)?;
        }
        check_one_of(
            "criticality",
            &self.criticality,
            &["low", "medium", "high", "critical"],
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointRow {
    site_code: String,
    code: String,
    zone_code: String,
    verification: String,
    frequency_minutes: i64,
    questions: Vec<String>,
    severity: String,
}

impl CheckpointRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_code("code", &self.code)?;
        check_code("zone_code", &self.zone_code)?;
        check_one_of("verification", &self.verification, &["qr", "nfc", "gps"])?;
        check_range("frequency_minutes", self.frequency_minutes, 5, 1440)?;
        if self.questions.len() > 20 {
            return Err(format!(
                "questions has {} entries; keep it to 20",
                self.questions.len()
            ));
        }
        check_one_of("severity", &self.severity, &["low", "medium", "high"])
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftRow {
    site_code: String,
    name: String,
    start_time: String,
    end_time: String,
    weekdays: Vec<String>,
    people_count: i64,
    role: String,
}

impl ShiftRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_text("name", &self.name, 100)?;
        check_hhmm("start_time", &self.start_time)?;
        check_hhmm("end_time", &self.end_time)?;
        if self.weekdays.is_empty() {
            return Err("weekdays must name at least one day (mon-sun)".to_string());
        }
        for day in &self.weekdays {
            check_one_of("weekdays", day, &WEEKDAYS)?;
        }
        check_range("people_count", self.people_count, 1, 500)?;
        check_one_of(
            "role",
            &self.role,
            &["guard", "supervisor", "technician", "cleaner"],
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceRow {
    site_code: String,
    code: String,
    asset_kind: Option<String>,
    asset_code: Option<String>,
    task: String,
    interval_count: i64,
    interval_unit: String,
    checklist: Vec<String>,
    reference: Option<String>,
}

impl MaintenanceRow {
    fn check(&self) -> Result<(), String> {
        check_code("site_code", &self.site_code)?;
        check_code("code", &self.code)?;
        match (&self.asset_kind, &self.asset_code) {
            (None, None) => {
                return Err("a maintenance schedule needs asset_kind or asset_code".to_string())
            }
            (Some(kind), _) => check_one_of("asset_kind", kind, &ASSET_KINDS)?,
            (None, Some(code)) => check_code("asset_code", code)?,
        }
        check_text("task", &self.task, 500)?;
        check_range("interval_count", self.interval_count, 1, 366)?;
        check_one_of(
            "interval_unit",
            &self.interval_unit,
            &["day", "week", "month", "year"],
        )?;
        if self.checklist.len() > 50 {
            return Err(format!(
                "checklist has {} entries; keep it to 50",
                self.checklist.len()
            ));
        }
        if let Some(reference) = &self.reference {
            check_text("reference", reference, 200)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupRow {
    category: String,
    code: String,
    name: String,
}

impl LookupRow {
    fn check(&self) -> Result<(), String> {
        let lower = |field: &str, value: &str| {
            let valid = !value.is_empty()
                && value.len() <= 64
                && value.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
                });
            if valid {
                Ok(())
            } else {
                Err(format!(
                    "{field} '{value}' must be 1-64 characters of a-z, 0-9, '_' and '-'"
                ))
            }
        };
        lower("category", &self.category)?;
        lower("code", &self.code)?;
        check_text("name", &self.name, 200)
    }
}

/// Reads one row by kind and key as a JSON object (column name to value), `None` when absent.
pub async fn read_row(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    kind: Kind,
    key: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, sqlx::Error> {
    let table = kind.table();
    let (condition, values) = key_condition(table, key, 2);
    let sql = format!(
        "SELECT to_jsonb(t) - 'tenant_id' FROM {} t WHERE t.tenant_id = $1 AND {condition}",
        table.name
    );
    let mut query = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql)).bind(tenant_id);
    for value in values {
        query = query.bind(value);
    }
    let row = query.fetch_optional(conn).await?;
    Ok(row.and_then(|value| match value {
        Value::Object(map) => Some(map),
        _ => None,
    }))
}

/// Builds `col = $n AND ...` for the key columns (as text), starting at placeholder `first`.
pub(crate) fn key_condition(
    table: Table,
    key: &Map<String, Value>,
    first: usize,
) -> (String, Vec<String>) {
    let mut parts = Vec::new();
    let mut values = Vec::new();
    for (index, column) in table.key.iter().enumerate() {
        parts.push(format!("t.{column} = ${}", first + index));
        values.push(
            key.get(*column)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
    }
    (parts.join(" AND "), values)
}

/// A site's whole configuration, every kind keyed to it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteConfiguration {
    /// The site row.
    pub site: Value,
    /// Its security settings, when set.
    pub security_settings: Option<Value>,
    /// Zones, by code.
    pub zones: Vec<Value>,
    /// Assets, by code.
    pub assets: Vec<Value>,
    /// Checkpoints, by code.
    pub checkpoints: Vec<Value>,
    /// Shifts, by name.
    pub shifts: Vec<Value>,
    /// Maintenance schedules, by code.
    pub maintenance_schedules: Vec<Value>,
}

/// Reads the configuration of site `code`; `None` when the tenant has no such site.
pub async fn site_configuration(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    code: &str,
) -> Result<Option<SiteConfiguration>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut key = Map::new();
    key.insert("code".to_string(), Value::String(code.to_string()));
    let Some(site) = read_row(&mut conn, tenant_id, Kind::Site, &key).await? else {
        return Ok(None);
    };
    let children = |table: &str, order: &str| {
        format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'tenant_id' ORDER BY t.{order}), '[]') \
               FROM {table} t WHERE t.tenant_id = $1 AND t.site_code = $2"
        )
    };
    let mut lists = Vec::new();
    for (table, order) in [
        ("security_settings", "site_code"),
        ("zones", "code"),
        ("assets", "code"),
        ("checkpoints", "code"),
        ("shifts", "name"),
        ("maintenance_schedules", "code"),
    ] {
        let list: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(children(table, order)))
            .bind(tenant_id)
            .bind(code)
            .fetch_one(&mut *conn)
            .await?;
        lists.push(list.as_array().cloned().unwrap_or_default());
    }
    let mut lists = lists.into_iter();
    let mut next = || lists.next().unwrap_or_default();
    Ok(Some(SiteConfiguration {
        site: Value::Object(site),
        security_settings: next().into_iter().next(),
        zones: next(),
        assets: next(),
        checkpoints: next(),
        shifts: next(),
        maintenance_schedules: next(),
    }))
}

/// Returns every row of every kind of a tenant, by kind, ordered by key: the full-table
/// snapshot that tests compare before an apply and after its rollback.
pub async fn snapshot(pool: &sqlx::PgPool, tenant_id: Uuid) -> Result<Value, sqlx::Error> {
    let mut all = Map::new();
    for kind in Kind::ALL {
        let table = kind.table();
        let order = table
            .key
            .iter()
            .map(|column| format!("t.{column}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'tenant_id' ORDER BY {order}), '[]') \
               FROM {} t WHERE t.tenant_id = $1",
            table.name
        );
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch_one(pool)
            .await?;
        all.insert(kind.as_str().to_string(), rows);
    }
    Ok(Value::Object(all))
}
