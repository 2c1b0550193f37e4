//! The offline maker and checker: deterministic rules that turn collected facts and retrieved
//! chunks into proposal items, and check proposal items from any maker.
//!
//! The maker proposes, in apply order: the site and its security settings, which follow the
//! security level. Then come the zones, assets and checkpoints that were named, shifts that
//! cover the operating hours, and maintenance schedules for assets whose rules a retrieved
//! chunk backs.
//! It cites only chunks it was given, and only when their text supports the operation by the
//! same lexical test the checker applies.

pub mod checker;
pub mod defaults;
pub mod evidence;
pub mod rules;
pub mod shifts;

use serde_json::{json, Map, Value};

use crate::changes::{Action, Operation};
use crate::conversations::facts::{
    AssetKind, CheckpointSubject, CollectedData, OperatingHours, SecurityLevel, SiteKind, Topic,
    ZoneFact, ZoneKind,
};
use crate::facility::Kind;
use crate::recommendations::{MakerOutput, ProposalItem, RetrievedChunk};

pub use checker::{check, ExistingConfiguration};
use defaults::{asset_criticality, patrol_questions, zone_profile, PATROL_ZONES};

/// Settings of the offline maker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakerSettings {
    /// IANA time zone of a site whose time zone is unknown.
    pub default_timezone: String,
    /// `max_users` of a site whose head count is unknown.
    pub default_max_users: u32,
}

impl Default for MakerSettings {
    fn default() -> Self {
        Self {
            default_timezone: "UTC".to_string(),
            default_max_users: 50,
        }
    }
}

/// Error of the offline maker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MakerError {
    /// A topic the site row needs is unanswered.
    #[error("cannot propose a setup yet: missing facts for {0:?}; ask about them first")]
    MissingFacts(Vec<Topic>),
}

/// Everything one proposal is built from.
struct Context<'a> {
    site_code: &'a str,
    facts: &'a CollectedData,
    chunks: &'a [RetrievedChunk],
    level: SecurityLevel,
    items: Vec<ProposalItem>,
}

/// Proposes the setup of site `site_code` from the collected facts and the retrieved chunks.
/// The code is the conversation's, and a site code in the facts is ignored.
pub fn propose(
    site_code: &str,
    facts: &CollectedData,
    chunks: &[RetrievedChunk],
    settings: &MakerSettings,
) -> Result<MakerOutput, MakerError> {
    let (Some(kind), Some(hours), Some(level)) =
        (facts.site_kind, &facts.hours, facts.security_level)
    else {
        let missing = [
            (Topic::SiteProfile, facts.site_kind.is_none()),
            (Topic::OperatingHours, facts.hours.is_none()),
            (Topic::SecurityLevel, facts.security_level.is_none()),
        ];
        let topics = missing
            .into_iter()
            .filter_map(|(topic, absent)| absent.then_some(topic))
            .collect();
        return Err(MakerError::MissingFacts(topics));
    };

    let mut context = Context {
        site_code,
        facts,
        chunks,
        level,
        items: Vec::new(),
    };
    context.site(kind, hours, settings);
    context.security_settings();
    context.zones();
    context.assets();
    context.checkpoints(kind);
    context.shifts(hours);
    context.maintenance();
    Ok(MakerOutput {
        items: context.items,
    })
}

/// Builds a create operation with the site code in its key.
fn create(kind: Kind, site_code: &str, key: &[(&str, &str)], fields: Value) -> Operation {
    let mut map = Map::new();
    if kind == Kind::Site {
        map.insert("code".to_string(), json!(site_code));
    } else {
        map.insert("site_code".to_string(), json!(site_code));
    }
    for (column, value) in key {
        map.insert(column.to_string(), json!(value));
    }
    Operation {
        kind,
        action: Action::Create,
        key: map,
        fields: match fields {
            Value::Object(fields) => fields,
            _ => Map::new(),
        },
    }
}

/// Builds a code from a prefix and a zone code, cut to 32 characters.
fn prefixed_code(prefix: &str, zone_code: &str) -> String {
    let code = format!("{prefix}-{zone_code}");
    code.chars()
        .take(32)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Adds a numeric suffix until `code` is not in `taken`, then records it.
fn unique_code(code: String, taken: &mut Vec<String>) -> String {
    let mut candidate = code.clone();
    let mut suffix = 2;
    while taken.contains(&candidate) {
        let tail = format!("-{suffix}");
        let base: String = code.chars().take(32 - tail.len()).collect();
        candidate = format!("{base}{tail}");
        suffix += 1;
    }
    taken.push(candidate.clone());
    candidate
}

impl Context<'_> {
    fn push(
        &mut self,
        operation: Operation,
        rationale: String,
        confidence: f64,
        citations: Vec<uuid::Uuid>,
    ) {
        self.items.push(ProposalItem {
            operation,
            rationale,
            confidence,
            citations,
        });
    }

    fn site(&mut self, kind: SiteKind, hours: &OperatingHours, settings: &MakerSettings) {
        let facts = self.facts;
        let name = facts
            .display_name()
            .unwrap_or_else(|| self.site_code.to_string());
        let max_users = facts
            .people_count
            .unwrap_or(settings.default_max_users)
            .clamp(1, 10_000);
        let (open_24x7, weekly_hours) = match hours {
            OperatingHours::Always => (true, Map::new()),
            OperatingHours::Weekly { days } => {
                let mut weekly = Map::new();
                for (day, ranges) in days {
                    // The site row stores one interval per day: the earliest opening to the
                    // latest closing. Shifts still follow each interval.
                    if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
                        weekly.insert(
                            day.as_str().to_string(),
                            json!({"open": first.start.to_string(), "close": last.end.to_string()}),
                        );
                    }
                }
                (false, weekly)
            }
        };
        let timezone = facts
            .timezone
            .clone()
            .unwrap_or_else(|| settings.default_timezone.clone());
        let operation = create(
            Kind::Site,
            self.site_code,
            &[],
            json!({
                "name": name,
                "kind": kind.as_str(),
                "timezone": timezone,
                "address": null,
                "max_users": max_users,
                "open_24x7": open_24x7,
                "weekly_hours": weekly_hours,
                "security_level": self.level.as_str(),
            }),
        );
        let mut rationale = format!(
            "Creates {} site {} with {} security, as described in the conversation.",
            kind.as_str(),
            self.site_code,
            self.level.as_str()
        );
        let mut confidence = 0.9;
        if facts.people_count.is_none() {
            rationale.push_str(&format!(
                " The head count was not given, so max_users is the default {max_users}."
            ));
            confidence = 0.7;
        }
        if facts.timezone.is_none() {
            rationale.push_str(&format!(" The time zone defaults to {timezone}; check it."));
            confidence -= 0.1;
        }
        self.push(operation, rationale, confidence, Vec::new());
    }

    fn security_settings(&mut self) {
        let level = self.level;
        let by_level = level != SecurityLevel::Basic;
        let gps = self.facts.gps_tracking.unwrap_or(by_level);
        let sleeping = level == SecurityLevel::High;
        let distance = if level == SecurityLevel::Basic {
            100
        } else {
            50
        };
        let operation = create(
            Kind::SecuritySettings,
            self.site_code,
            &[],
            json!({
                "gps_enabled": gps,
                "sleeping_guard_detection": sleeping,
                "permissible_distance_m": distance,
            }),
        );
        let mut rationale = format!(
            "Security settings follow the {} level: GPS tracking on for enhanced and high, \
             sleeping-guard detection for high, a permissible distance of 100 m for basic and \
             50 m otherwise.",
            level.as_str()
        );
        if gps != by_level {
            rationale.push_str(" GPS tracking follows what the user asked instead of the level.");
        }
        self.push(operation, rationale, 0.85, Vec::new());
    }

    fn zones(&mut self) {
        let facts = self.facts;
        for zone in &facts.zones {
            let (importance, risk) = zone_profile(zone.kind);
            let operation = create(
                Kind::Zone,
                self.site_code,
                &[("code", &zone.code)],
                json!({
                    "name": zone.name,
                    "kind": zone.kind.as_str(),
                    "importance": importance,
                    "risk_level": risk,
                }),
            );
            let rationale = format!(
                "The user named {} as an area of the site; it is a {} zone.",
                zone.name,
                zone.kind.as_str()
            );
            self.push(operation, rationale, 0.9, Vec::new());
        }
    }

    fn assets(&mut self) {
        let facts = self.facts;
        let mut taken = Vec::new();
        for asset in &facts.assets {
            let zone = asset
                .zone
                .as_deref()
                .and_then(|place| facts.zone_for(place));
            let kind_code = asset.kind.as_str().replace('_', "-").to_uppercase();
            let code = match zone {
                Some(zone) => prefixed_code(&kind_code, &zone.code),
                None => kind_code,
            };
            let code = unique_code(code, &mut taken);
            let name = match zone {
                Some(zone) => format!("{} ({})", asset.name, zone.name),
                None => asset.name.clone(),
            };
            let operation = create(
                Kind::Asset,
                self.site_code,
                &[("code", &code)],
                json!({
                    "name": name,
                    "kind": asset.kind.as_str(),
                    "zone_code": zone.map(|zone| zone.code.clone()),
                    "criticality": asset_criticality(asset.kind),
                }),
            );
            let (rationale, confidence) = match (zone, &asset.zone) {
                (Some(zone), _) => (format!("The user named {} in {}.", asset.name, zone.name), 0.85),
                (None, Some(place)) => (
                    format!(
                        "The user named {} at \"{place}\", which matches no named zone, so it has no zone.",
                        asset.name
                    ),
                    0.7,
                ),
                (None, None) => (format!("The user named {}.", asset.name), 0.8),
            };
            self.push(operation, rationale, confidence, Vec::new());
        }
    }

    fn checkpoints(&mut self, kind: SiteKind) {
        let facts = self.facts;
        if facts.checkpoints_requested == Some(false) || facts.zones.is_empty() {
            return;
        }
        let mut taken = Vec::new();
        let mut patrol: Vec<&ZoneFact> = Vec::new();
        for request in &facts.checkpoint_requests {
            if request.subject != CheckpointSubject::Patrol {
                continue;
            }
            let zone = request
                .zone
                .as_deref()
                .and_then(|place| facts.zone_for(place));
            if let Some(zone) = zone.filter(|zone| !patrol.contains(zone)) {
                patrol.push(zone);
            }
        }
        let guarded_site = matches!(
            kind,
            SiteKind::Warehouse | SiteKind::Industrial | SiteKind::Manufacturing
        ) || self.level != SecurityLevel::Basic;
        if guarded_site {
            for zone in &facts.zones {
                if PATROL_ZONES.contains(&zone.kind) && !patrol.contains(&zone) {
                    patrol.push(zone);
                }
            }
        }

        let frequency = match self.level {
            SecurityLevel::High => 60,
            SecurityLevel::Enhanced => 120,
            SecurityLevel::Basic => 240,
        };
        let verification = if self.level == SecurityLevel::High {
            "nfc"
        } else {
            "qr"
        };
        for zone in patrol {
            let requested = facts.checkpoint_requests.iter().find_map(|request| {
                let same = request
                    .zone
                    .as_deref()
                    .and_then(|place| facts.zone_for(place));
                (same == Some(zone))
                    .then_some(request.frequency_minutes)
                    .flatten()
            });
            let code = unique_code(prefixed_code("CP", &zone.code), &mut taken);
            let (_, risk) = zone_profile(zone.kind);
            let operation = create(
                Kind::Checkpoint,
                self.site_code,
                &[("code", &code)],
                json!({
                    "zone_code": zone.code,
                    "verification": verification,
                    "frequency_minutes": requested.unwrap_or(frequency).clamp(5, 1440),
                    "questions": patrol_questions(zone.kind),
                    "severity": risk,
                }),
            );
            let rationale = format!(
                "A patrol checkpoint at {}, a {} zone, visited every {} minutes for {} security.",
                zone.name,
                zone.kind.as_str(),
                requested.unwrap_or(frequency),
                self.level.as_str()
            );
            self.push(operation, rationale, 0.75, Vec::new());
        }
        self.exit_route_checkpoints(&mut taken);
    }

    fn exit_route_checkpoints(&mut self, taken: &mut Vec<String>) {
        let facts = self.facts;
        let chunks = self.chunks;
        let Some(request) = facts
            .checkpoint_requests
            .iter()
            .find(|request| request.subject == CheckpointSubject::ExitRoutes)
        else {
            return;
        };
        // Exit routes run through the occupied floors. Without floors, the lobby or any zone.
        let zones = &facts.zones;
        let mut places: Vec<&ZoneFact> = zones
            .iter()
            .filter(|zone| matches!(zone.kind, ZoneKind::OfficeFloor | ZoneKind::WarehouseFloor))
            .collect();
        if places.is_empty() {
            places = zones
                .iter()
                .find(|zone| zone.kind == ZoneKind::Lobby)
                .or(zones.first())
                .into_iter()
                .collect();
        }
        let frequency = request.frequency_minutes.unwrap_or(1440).clamp(5, 1440);
        for zone in places {
            let code = unique_code(prefixed_code("EXIT", &zone.code), taken);
            let operation = create(
                Kind::Checkpoint,
                self.site_code,
                &[("code", &code)],
                json!({
                    "zone_code": zone.code,
                    "verification": "qr",
                    "frequency_minutes": frequency,
                    "questions": rules::EXIT_ROUTE_QUESTIONS,
                    "severity": "high",
                }),
            );
            let subject = evidence::operation_terms(&operation);
            let chunk = rules::best_chunk(chunks, rules::EXIT_ROUTE_EVIDENCE, &subject);
            let (rationale, confidence, citations) = match chunk {
                Some(chunk) => (
                    format!(
                        "The user asked for exit routes and exit signs to be checked; {} \
                         requires exit routes kept free and unobstructed and exit signs lit.",
                        chunk.document_title
                    ),
                    0.8,
                    vec![chunk.chunk_id],
                ),
                None => (
                    "The user asked for exit routes and exit signs to be checked; no retrieved \
                     document covers exit routes, so this has no citation."
                        .to_string(),
                    0.6,
                    Vec::new(),
                ),
            };
            self.push(operation, rationale, confidence, citations);
        }
    }

    fn shifts(&mut self, hours: &OperatingHours) {
        let facts = self.facts;
        if facts.shifts_requested == Some(false) {
            return;
        }
        for shift in shifts::plan(hours, &facts.shift_requests, self.level) {
            let weekdays: Vec<&str> = shift.weekdays.iter().map(|day| day.as_str()).collect();
            let operation = create(
                Kind::Shift,
                self.site_code,
                &[("name", &shift.name)],
                json!({
                    "start_time": shift.start.to_string(),
                    "end_time": shift.end.to_string(),
                    "weekdays": weekdays,
                    "people_count": shift.people_count.clamp(1, 500),
                    "role": shift.role.as_str(),
                }),
            );
            let asked = facts
                .shift_requests
                .iter()
                .any(|request| request.role == shift.role && request.zone == shift.post);
            let (rationale, confidence) = if asked {
                (
                    format!(
                        "Staffs the {} the user asked for during the operating hours ({} {}-{}).",
                        shift.role.as_str(),
                        shifts::days_label(&shift.weekdays),
                        shift.start,
                        shift.end
                    ),
                    0.85,
                )
            } else {
                (
                    format!(
                        "Covers the operating hours ({} {}-{}) with {} guards, the default for {} \
                         security; adjust the head count if needed.",
                        shifts::days_label(&shift.weekdays),
                        shift.start,
                        shift.end,
                        shift.people_count,
                        self.level.as_str()
                    ),
                    0.7,
                )
            };
            self.push(operation, rationale, confidence, Vec::new());
        }
    }

    fn maintenance(&mut self) {
        let facts = self.facts;
        let chunks = self.chunks;
        if facts.maintenance_requested == Some(false) {
            return;
        }
        let mut done: Vec<AssetKind> = Vec::new();
        for asset in &facts.assets {
            let kind = asset.kind;
            let Some(rule) = rules::maintenance_rule(kind).filter(|_| !done.contains(&kind)) else {
                continue;
            };
            done.push(kind);
            let draft = self.maintenance_operation(rule, rule.default_interval, "");
            let subject = evidence::operation_terms(&draft);
            let Some(chunk) = rules::best_chunk(chunks, rule.evidence, &subject) else {
                continue;
            };
            // The schedule follows the interval the source states, within the rule's limit.
            let interval = rules::stated_interval(&chunk.text)
                .filter(|interval| interval.max_days() <= rule.max_interval_days)
                .unwrap_or(rule.default_interval);
            let operation = self.maintenance_operation(rule, interval, &chunk.document_title);
            let rationale = format!(
                "{}: every {} {}(s), as {} requires.",
                rule.task,
                interval.count,
                interval.unit.as_str(),
                chunk.document_title
            );
            let confidence = 0.6 + 0.25 * chunk.authority.weight();
            self.push(operation, rationale, confidence, vec![chunk.chunk_id]);
        }
    }

    fn maintenance_operation(
        &self,
        rule: &rules::MaintenanceRule,
        interval: rules::Interval,
        reference: &str,
    ) -> Operation {
        let code = format!(
            "MAINT-{}",
            rule.asset_kind.as_str().replace('_', "-").to_uppercase()
        );
        let reference: String = reference.chars().take(200).collect();
        create(
            Kind::MaintenanceSchedule,
            self.site_code,
            &[("code", &code)],
            json!({
                "asset_kind": rule.asset_kind.as_str(),
                "asset_code": null,
                "task": rule.task,
                "interval_count": interval.count,
                "interval_unit": interval.unit.as_str(),
                "checklist": rule.checklist,
                "reference": (!reference.is_empty()).then_some(reference),
            }),
        )
    }
}

#[cfg(test)]
mod tests;
