//! The offline checker: business rules, security and compliance checks and citation support for
//! proposal items from any maker, without a database or a model.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use super::evidence;
use super::rules::{self, IntervalUnit};
use super::shifts::{self, ShiftSpan};
use crate::changes::{Action, Operation};
use crate::conversations::facts::{ClockTime, OperatingHours, TimeRange, Weekday};
use crate::facility::Kind;
use crate::recommendations::{
    CheckedOperation, CheckerOutput, CitationCheck, Finding, FindingCategory, ProposalItem,
    RetrievedChunk, MAX_ADJUSTMENT, MIN_ADJUSTMENT,
};

/// Adjustment of an operation whose citations are all supported.
const SUPPORTED_BONUS: f64 = 0.1;

/// Adjustment per unsupported citation.
const UNSUPPORTED_PENALTY: f64 = -0.15;

/// Adjustment per failed finding.
const FAILED_FINDING_PENALTY: f64 = -0.2;

/// Rows that exist already, which operations may reference without creating them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExistingConfiguration {
    /// Codes of existing sites.
    pub site_codes: BTreeSet<String>,
    /// Existing zones as (site code, zone code).
    pub zones: BTreeSet<(String, String)>,
    /// Existing assets as (site code, asset code).
    pub assets: BTreeSet<(String, String)>,
}

/// Facts about the whole set that the checker needs before judging each item.
struct SetView {
    /// Site rows created in the set: code to (security level, operating hours).
    sites: BTreeMap<String, (String, Option<OperatingHours>)>,
    /// Shifts in the set, per site code.
    shifts: BTreeMap<String, Vec<ShiftSpan>>,
}

/// Checks every item against the business rules, the security level and the cited chunks.
/// References are resolved against the items before each one and `existing`.
pub fn check(
    items: &[ProposalItem],
    chunks: &[RetrievedChunk],
    existing: &ExistingConfiguration,
) -> CheckerOutput {
    let view = view_of(items);
    let mut created: HashSet<(Kind, String)> = HashSet::new();
    let mut seen: HashMap<(Kind, String), usize> = HashMap::new();
    let mut operations = Vec::with_capacity(items.len());

    for (index, item) in items.iter().enumerate() {
        let operation = &item.operation;
        let mut errors = shape_errors(operation);
        let mut findings = Vec::new();
        let key = key_text(operation);

        if errors.is_empty() {
            if let Some(first) = seen.get(&(operation.kind, key.clone())) {
                errors.push(format!(
                    "repeats the {} {key} of item {first}; keep one operation per row",
                    operation.kind.as_str()
                ));
            }
            seen.insert((operation.kind, key.clone()), index);
            errors.extend(row_errors(operation));
            errors.extend(reference_errors(operation, &created, existing));
        }
        action_findings(operation, &mut errors, &mut findings);
        rule_findings(operation, &view, &mut findings);

        let citations = citation_checks(item, chunks);
        if !item.citations.is_empty() {
            let supported = citations.iter().any(|check| check.supported);
            findings.push(Finding {
                category: FindingCategory::Compliance,
                passed: supported,
                message: if supported {
                    "a cited chunk supports the operation".to_string()
                } else {
                    "no cited chunk supports the operation; cite the requirement it follows"
                        .to_string()
                },
            });
        }

        let valid = errors.is_empty();
        if valid && operation.action == Action::Create {
            created.insert((operation.kind, key));
        }
        let adjustment = adjustment(valid, &citations, &findings);
        operations.push(CheckedOperation {
            index,
            valid,
            errors,
            citations,
            findings,
            adjustment,
        });
    }

    CheckerOutput {
        valid: operations.iter().all(|checked| checked.valid),
        operations,
    }
}

/// Returns the adjustment: -0.5 for an invalid operation, else a bonus when every citation is
/// supported and penalties for unsupported citations and failed findings, within the range.
fn adjustment(valid: bool, citations: &[CitationCheck], findings: &[Finding]) -> f64 {
    if !valid {
        return MIN_ADJUSTMENT;
    }
    let unsupported = citations.iter().filter(|check| !check.supported).count();
    let failed = findings.iter().filter(|finding| !finding.passed).count();
    let mut value =
        UNSUPPORTED_PENALTY * unsupported as f64 + FAILED_FINDING_PENALTY * failed as f64;
    if !citations.is_empty() && unsupported == 0 {
        value += SUPPORTED_BONUS;
    }
    value.clamp(MIN_ADJUSTMENT, MAX_ADJUSTMENT)
}

fn view_of(items: &[ProposalItem]) -> SetView {
    let mut sites = BTreeMap::new();
    let mut shift_spans: BTreeMap<String, Vec<ShiftSpan>> = BTreeMap::new();
    for item in items {
        let operation = &item.operation;
        if operation.action == Action::Delete {
            continue;
        }
        match operation.kind {
            Kind::Site => {
                let code = text(&operation.key, "code").to_string();
                let level = text(&operation.fields, "security_level").to_string();
                sites.insert(code, (level, site_hours(&operation.fields)));
            }
            Kind::Shift => {
                if let Some(span) = shift_span(&operation.fields) {
                    let site = text(&operation.key, "site_code").to_string();
                    shift_spans.entry(site).or_default().push(span);
                }
            }
            _ => {}
        }
    }
    SetView {
        sites,
        shifts: shift_spans,
    }
}

fn text<'a>(map: &'a Map<String, Value>, field: &str) -> &'a str {
    map.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Reads a site row's operating hours, `None` when the fields lack them.
fn site_hours(fields: &Map<String, Value>) -> Option<OperatingHours> {
    if fields.get("open_24x7")?.as_bool()? {
        return Some(OperatingHours::Always);
    }
    let weekly = fields.get("weekly_hours")?.as_object()?;
    let mut days = BTreeMap::new();
    for day in Weekday::ALL {
        let Some(hours) = weekly.get(day.as_str()) else {
            continue;
        };
        let start = ClockTime::parse(hours.get("open")?.as_str()?)?;
        let end = ClockTime::parse(hours.get("close")?.as_str()?)?;
        days.insert(*day, vec![TimeRange { start, end }]);
    }
    Some(OperatingHours::Weekly { days })
}

fn shift_span(fields: &Map<String, Value>) -> Option<ShiftSpan> {
    let start = ClockTime::parse(fields.get("start_time")?.as_str()?)?;
    let end = ClockTime::parse(fields.get("end_time")?.as_str()?)?;
    let weekdays = fields
        .get("weekdays")?
        .as_array()?
        .iter()
        .filter_map(|day| {
            let name = day.as_str()?;
            Weekday::ALL
                .iter()
                .copied()
                .find(|weekday| weekday.as_str() == name)
        })
        .collect();
    Some(ShiftSpan {
        range: TimeRange { start, end },
        weekdays,
    })
}

/// Joins the key values in the table's key order, such as "WH-01/GATE".
fn key_text(operation: &Operation) -> String {
    operation
        .kind
        .table()
        .key
        .iter()
        .map(|column| text(&operation.key, column))
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks that the key names exactly the kind's key columns and the fields only its data
/// columns.
fn shape_errors(operation: &Operation) -> Vec<String> {
    let kind = operation.kind;
    let table = kind.table();
    let mut errors = Vec::new();
    for column in table.key {
        if operation.key.get(*column).and_then(Value::as_str).is_none() {
            errors.push(format!(
                "key.{column} is missing; {} keys are {}",
                kind.as_str(),
                table.key.join(", ")
            ));
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
        if !table.data.contains(&column.as_str()) {
            errors.push(format!(
                "fields.{column} is not a field of {}; fields are {}",
                kind.as_str(),
                table.data.join(", ")
            ));
        }
    }
    errors
}

/// Validates a created row whole. Updates and deletes depend on the stored row, which the
/// preview checks.
fn row_errors(operation: &Operation) -> Vec<String> {
    if operation.action != Action::Create {
        return Vec::new();
    }
    let mut row = operation.key.clone();
    row.extend(operation.fields.clone());
    match operation.kind.validate_row(&row) {
        Ok(()) => Vec::new(),
        Err(error) => vec![error],
    }
}

/// Checks that the site, zone and asset an operation refers to exist or are created earlier.
fn reference_errors(
    operation: &Operation,
    created: &HashSet<(Kind, String)>,
    existing: &ExistingConfiguration,
) -> Vec<String> {
    if operation.kind == Kind::Site || operation.action == Action::Delete {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let Some(site) = operation.key.get("site_code").and_then(Value::as_str) else {
        return errors;
    };
    if !created.contains(&(Kind::Site, site.to_string())) && !existing.site_codes.contains(site) {
        errors.push(format!("site {site} does not exist; create the site first"));
    }
    let links = [
        (Kind::Zone, "zone_code", &existing.zones),
        (Kind::Asset, "asset_code", &existing.assets),
    ];
    for (kind, field, known) in links {
        let Some(code) = operation.fields.get(field).and_then(Value::as_str) else {
            continue;
        };
        let pair = (site.to_string(), code.to_string());
        if !created.contains(&(kind, format!("{site}/{code}"))) && !known.contains(&pair) {
            errors.push(format!(
                "{} {site}/{code} does not exist; create it before referring to it",
                kind.as_str()
            ));
        }
    }
    errors
}

/// Flags deletes: a site may not be deleted from a proposal, and other deletes need a person's
/// attention.
fn action_findings(operation: &Operation, errors: &mut Vec<String>, findings: &mut Vec<Finding>) {
    if operation.action != Action::Delete {
        return;
    }
    if operation.kind == Kind::Site {
        errors.push("a proposal may not delete a site".to_string());
    }
    findings.push(Finding {
        category: FindingCategory::Security,
        passed: false,
        message: format!(
            "deletes a {}; deletions were not asked for in an onboarding proposal",
            operation.kind.as_str()
        ),
    });
}

/// Applies the kind-specific rules: security settings against the level, shifts against the
/// operating hours, maintenance intervals against their limits.
fn rule_findings(operation: &Operation, view: &SetView, findings: &mut Vec<Finding>) {
    if operation.action == Action::Delete {
        return;
    }
    let site = match operation.kind {
        Kind::Site => text(&operation.key, "code"),
        _ => text(&operation.key, "site_code"),
    };
    let site_row = view.sites.get(site);
    match operation.kind {
        Kind::Site => {
            let (Some((_, Some(hours))), Some(spans)) = (site_row, view.shifts.get(site)) else {
                return;
            };
            findings.push(coverage_finding(hours, spans));
        }
        Kind::SecuritySettings => {
            if let Some((level, _)) = site_row {
                findings.push(security_finding(level, &operation.fields));
            }
        }
        Kind::Shift => {
            if let (Some((_, Some(hours))), Some(span)) = (site_row, shift_span(&operation.fields))
            {
                findings.push(open_days_finding(hours, &span));
            }
        }
        Kind::MaintenanceSchedule => {
            if let Some(finding) = interval_finding(&operation.fields) {
                findings.push(finding);
            }
        }
        _ => {}
    }
}

fn coverage_finding(hours: &OperatingHours, spans: &[ShiftSpan]) -> Finding {
    let gaps = shifts::uncovered_minutes(hours, spans);
    let message = if gaps.is_empty() {
        "the shifts cover every open hour".to_string()
    } else {
        let listed: Vec<String> = gaps
            .iter()
            .map(|(day, minutes)| format!("{} {} min", day.as_str(), minutes))
            .collect();
        format!(
            "open hours without a shift: {}; add or extend shifts",
            listed.join(", ")
        )
    };
    Finding {
        category: FindingCategory::BusinessRule,
        passed: gaps.is_empty(),
        message,
    }
}

fn open_days_finding(hours: &OperatingHours, span: &ShiftSpan) -> Finding {
    let closed: Vec<&str> = span
        .weekdays
        .iter()
        .filter(|day| hours.on(**day).is_empty())
        .map(|day| day.as_str())
        .collect();
    Finding {
        category: FindingCategory::BusinessRule,
        passed: closed.is_empty(),
        message: if closed.is_empty() {
            "the shift runs on open days only".to_string()
        } else {
            format!(
                "the shift runs on {}, when the site is closed; remove those days",
                closed.join(", ")
            )
        },
    }
}

/// Compares security settings with what the site's level requires: GPS for enhanced and high,
/// sleeping-guard detection for high, at most 100 m (basic) or 50 m permissible distance.
fn security_finding(level: &str, fields: &Map<String, Value>) -> Finding {
    let flag = |name: &str| fields.get(name).and_then(Value::as_bool).unwrap_or(false);
    let distance = fields
        .get("permissible_distance_m")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    let mut problems = Vec::new();
    if level != "basic" && !flag("gps_enabled") {
        problems.push(format!(
            "GPS tracking is off, but {level} security requires it"
        ));
    }
    if level == "high" && !flag("sleeping_guard_detection") {
        problems.push("sleeping-guard detection is off, but high security requires it".to_string());
    }
    let limit = if level == "basic" { 100 } else { 50 };
    if distance > limit {
        problems.push(format!(
            "the permissible distance {distance} m exceeds {limit} m for {level} security"
        ));
    }
    Finding {
        category: FindingCategory::Security,
        passed: problems.is_empty(),
        message: if problems.is_empty() {
            format!("the settings meet the {level} security level")
        } else {
            problems.join("; ")
        },
    }
}

/// Checks a schedule's interval against its asset kind's limit, when the kind has a rule.
fn interval_finding(fields: &Map<String, Value>) -> Option<Finding> {
    let kind = text(fields, "asset_kind");
    let rule = rules::MAINTENANCE_RULES
        .iter()
        .find(|rule| rule.asset_kind.as_str() == kind)?;
    let count = fields.get("interval_count").and_then(Value::as_u64)?;
    let unit = IntervalUnit::parse(text(fields, "interval_unit"))?;
    let days = count.saturating_mul(u64::from(unit.max_days()));
    let passed = days <= u64::from(rule.max_interval_days);
    Some(Finding {
        category: FindingCategory::Compliance,
        passed,
        message: if passed {
            format!(
                "the interval of up to {days} days is within {} days",
                rule.max_interval_days
            )
        } else {
            format!(
                "the interval can last {days} days, longer than the {} days allowed for {kind}; \
                 shorten it",
                rule.max_interval_days
            )
        },
    })
}

/// Judges each citation: a chunk that was not retrieved is unsupported, and a retrieved one
/// supports the operation when it passes the lexical test of [`evidence::supports`].
fn citation_checks(item: &ProposalItem, chunks: &[RetrievedChunk]) -> Vec<CitationCheck> {
    let subject = evidence::operation_terms(&item.operation);
    item.citations
        .iter()
        .map(|id| {
            let chunk = chunks.iter().find(|chunk| chunk.chunk_id == *id);
            CitationCheck {
                chunk_id: *id,
                supported: chunk.is_some_and(|chunk| evidence::supports(&subject, &chunk.text)),
            }
        })
        .collect()
}
