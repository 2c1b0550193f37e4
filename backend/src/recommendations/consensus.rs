//! Deterministic consensus over the maker's proposal and the checker's verdicts.
//!
//! score = 0.3 coverage + 0.4 agreement + 0.1 freshness + 0.2 policy, and the proposal's
//! confidence is the mean of the score and the maker's mean confidence. The decision is approve
//! when confidence >= 0.7 and agreement >= 0.6, modify when confidence >= 0.4, else escalate.
//! Before scoring, citations of chunks that were not retrieved and citations the checker found
//! unsupported are removed, and operations the checker marks invalid are dropped. Dropping
//! escalates when it takes away the site or a row that a kept operation refers to, or leaves
//! nothing.
//!
//! The terms, each in [0, 1]:
//! - coverage: per kept operation, the authority weight of its best remaining citation (official
//!   1.0, high 0.8, medium 0.6, low 0.3, none 0), averaged over the kept operations;
//! - agreement: 0.5 without a checker, 0.2 when the checker marks the set invalid, else from the
//!   mean adjustment: above 0 gives 0.9, above -0.1 gives 0.7, above -0.3 gives 0.4, else 0.1;
//! - freshness: the mean over cited documents of the freshness steps of [`freshness`] (an
//!   unknown date counts as the oldest step), 0 when nothing is cited;
//! - policy: 0.7, plus 0.2 when the checker's compliance findings on kept operations all pass,
//!   minus 0.3 when one fails, plus 0.2 when an official source is cited, clamped.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{CheckerOutput, Finding, FindingCategory, MakerOutput, RetrievedChunk};
use crate::changes::Operation;
use crate::facility::Kind;
use crate::knowledge::search::freshness;
use crate::knowledge::Authority;

/// Weights and thresholds of the consensus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConsensusSettings {
    /// Weight of coverage in the score.
    pub coverage_weight: f64,
    /// Weight of agreement in the score.
    pub agreement_weight: f64,
    /// Weight of freshness in the score.
    pub freshness_weight: f64,
    /// Weight of policy in the score.
    pub policy_weight: f64,
    /// Lowest confidence that approves.
    pub approve_confidence: f64,
    /// Lowest agreement that approves.
    pub approve_agreement: f64,
    /// Lowest confidence that leads to modification rather than escalation.
    pub modify_confidence: f64,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        Self {
            coverage_weight: 0.3,
            agreement_weight: 0.4,
            freshness_weight: 0.1,
            policy_weight: 0.2,
            approve_confidence: 0.7,
            approve_agreement: 0.6,
            modify_confidence: 0.4,
        }
    }
}

/// Next step for the proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Offer the proposal to the manager as it is.
    Approve,
    /// Offer it with a warning that it needs changes.
    Modify,
    /// Do not offer it, because a person must look at the run first.
    Escalate,
}

/// The four terms of the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    /// Authority-weighted share of operations with a supported citation.
    pub coverage: f64,
    /// How far the checker agrees with the maker.
    pub agreement: f64,
    /// Recency of the cited documents.
    pub freshness: f64,
    /// Compliance findings and official sources.
    pub policy: f64,
}

/// A kept operation with its remaining citations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusItem {
    /// Position in the maker's output, from 0.
    pub index: usize,
    /// The operation.
    pub operation: Operation,
    /// The maker's rationale.
    pub rationale: String,
    /// The maker's confidence plus the checker's adjustment, clamped to [0, 1].
    pub confidence: f64,
    /// Citations that survived.
    pub citations: Vec<Uuid>,
    /// The checker's findings.
    pub findings: Vec<Finding>,
}

/// An operation the checker marked invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedItem {
    /// Position in the maker's output, from 0.
    pub index: usize,
    /// The operation.
    pub operation: Operation,
    /// The checker's errors.
    pub errors: Vec<String>,
}

/// The consensus result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consensus {
    /// Operations kept, in the maker's order.
    pub items: Vec<ConsensusItem>,
    /// Operations dropped as invalid.
    pub dropped: Vec<DroppedItem>,
    /// The terms of the score.
    pub terms: Terms,
    /// The weighted score.
    pub score: f64,
    /// The maker's mean confidence over kept operations.
    pub maker_confidence: f64,
    /// The mean of score and maker confidence.
    pub confidence: f64,
    /// The decision.
    pub decision: Decision,
    /// Citations removed because the checker found them unsupported.
    pub removed_unsupported: usize,
    /// Citations removed because they named no retrieved chunk.
    pub removed_unknown: usize,
    /// Reasons that escalate the run regardless of the score, empty when none.
    pub escalation_reasons: Vec<String>,
}

/// Scores a proposal and decides what happens to it.
pub fn decide(
    maker: &MakerOutput,
    checker: Option<&CheckerOutput>,
    chunks: &[RetrievedChunk],
    settings: &ConsensusSettings,
) -> Consensus {
    let by_id: BTreeMap<Uuid, &RetrievedChunk> =
        chunks.iter().map(|chunk| (chunk.chunk_id, chunk)).collect();
    let mut items = Vec::new();
    let mut dropped = Vec::new();
    let mut maker_confidences = Vec::new();
    let mut removed_unsupported = 0;
    let mut removed_unknown = 0;

    for (index, item) in maker.items.iter().enumerate() {
        let checked = checker.and_then(|checker| checker.operation(index));
        if let Some(checked) = checked.filter(|checked| !checked.valid) {
            dropped.push(DroppedItem {
                index,
                operation: item.operation.clone(),
                errors: checked.errors.clone(),
            });
            continue;
        }

        let mut citations = Vec::new();
        for id in &item.citations {
            let unsupported = checked.is_some_and(|checked| {
                checked
                    .citations
                    .iter()
                    .any(|check| check.chunk_id == *id && !check.supported)
            });
            if !by_id.contains_key(id) {
                removed_unknown += 1;
            } else if unsupported {
                removed_unsupported += 1;
            } else if !citations.contains(id) {
                citations.push(*id);
            }
        }
        let adjustment = checked.map_or(0.0, |checked| checked.adjustment);
        maker_confidences.push(item.confidence.clamp(0.0, 1.0));
        items.push(ConsensusItem {
            index,
            operation: item.operation.clone(),
            rationale: item.rationale.clone(),
            confidence: (item.confidence + adjustment).clamp(0.0, 1.0),
            citations,
            findings: checked
                .map(|checked| checked.findings.clone())
                .unwrap_or_default(),
        });
    }

    let terms = Terms {
        coverage: coverage(&items, &by_id),
        agreement: agreement(checker),
        freshness: freshness_term(&items, &by_id),
        policy: policy(&items, &by_id),
    };
    let score = settings.coverage_weight * terms.coverage
        + settings.agreement_weight * terms.agreement
        + settings.freshness_weight * terms.freshness
        + settings.policy_weight * terms.policy;
    let maker_confidence = mean(&maker_confidences);
    let confidence = (score + maker_confidence) / 2.0;
    let escalation_reasons = escalation_reasons(&items, &dropped);
    let decision = if escalation_reasons.is_empty() {
        decision(confidence, terms.agreement, settings)
    } else {
        Decision::Escalate
    };

    Consensus {
        items,
        dropped,
        terms,
        score,
        maker_confidence,
        confidence,
        decision,
        removed_unsupported,
        removed_unknown,
        escalation_reasons,
    }
}

/// Returns the decision for a confidence and an agreement term.
pub fn decision(confidence: f64, agreement: f64, settings: &ConsensusSettings) -> Decision {
    if confidence >= settings.approve_confidence && agreement >= settings.approve_agreement {
        Decision::Approve
    } else if confidence >= settings.modify_confidence {
        Decision::Modify
    } else {
        Decision::Escalate
    }
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Returns the authority weight of each kept operation's best citation, averaged.
fn coverage(items: &[ConsensusItem], by_id: &BTreeMap<Uuid, &RetrievedChunk>) -> f64 {
    let weights: Vec<f64> = items
        .iter()
        .map(|item| {
            item.citations
                .iter()
                .filter_map(|id| by_id.get(id))
                .map(|chunk| chunk.authority.weight())
                .fold(0.0, f64::max)
        })
        .collect();
    mean(&weights)
}

/// Returns the agreement term from the checker's verdict.
pub fn agreement(checker: Option<&CheckerOutput>) -> f64 {
    let Some(checker) = checker else {
        return 0.5;
    };
    if !checker.valid {
        return 0.2;
    }
    match checker.mean_adjustment() {
        adjustment if adjustment > 0.0 => 0.9,
        adjustment if adjustment > -0.1 => 0.7,
        adjustment if adjustment > -0.3 => 0.4,
        _ => 0.1,
    }
}

/// Returns the mean freshness over the distinct documents cited by kept operations.
fn freshness_term(items: &[ConsensusItem], by_id: &BTreeMap<Uuid, &RetrievedChunk>) -> f64 {
    let mut documents: BTreeMap<Uuid, f64> = BTreeMap::new();
    for item in items {
        for chunk in item.citations.iter().filter_map(|id| by_id.get(id)) {
            let age = chunk.age_days.unwrap_or(f64::INFINITY);
            documents.insert(chunk.document_id, freshness(age));
        }
    }
    mean(&documents.into_values().collect::<Vec<_>>())
}

/// Returns the policy term from compliance findings and official citations.
fn policy(items: &[ConsensusItem], by_id: &BTreeMap<Uuid, &RetrievedChunk>) -> f64 {
    let compliance: Vec<&Finding> = items
        .iter()
        .flat_map(|item| &item.findings)
        .filter(|finding| finding.category == FindingCategory::Compliance)
        .collect();
    let mut value: f64 = 0.7;
    if compliance.iter().any(|finding| !finding.passed) {
        value -= 0.3;
    } else if !compliance.is_empty() {
        value += 0.2;
    }
    let official = items
        .iter()
        .flat_map(|item| &item.citations)
        .filter_map(|id| by_id.get(id))
        .any(|chunk| chunk.authority == Authority::Official);
    if official {
        value += 0.2;
    }
    value.clamp(0.0, 1.0)
}

/// Returns why dropping invalid operations leaves a proposal that cannot stand: the site went,
/// a kept operation refers to a dropped row, or nothing is left.
fn escalation_reasons(items: &[ConsensusItem], dropped: &[DroppedItem]) -> Vec<String> {
    let mut reasons = Vec::new();
    if items.is_empty() {
        reasons.push("the checker found no valid operation".to_string());
        return reasons;
    }
    let mut gone: HashSet<(Kind, String, String)> = HashSet::new();
    for item in dropped {
        let operation = &item.operation;
        let field = |name: &str| {
            operation
                .key
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        match operation.kind {
            Kind::Site => {
                reasons.push(format!(
                    "the checker rejected the site operation (item {}), which every other \
                     operation depends on",
                    item.index
                ));
                gone.insert((Kind::Site, field("code").to_string(), String::new()));
            }
            Kind::Zone | Kind::Asset => {
                gone.insert((
                    operation.kind,
                    field("site_code").to_string(),
                    field("code").to_string(),
                ));
            }
            _ => {}
        }
    }
    for item in items {
        let operation = &item.operation;
        let site = operation
            .key
            .get("site_code")
            .and_then(Value::as_str)
            .unwrap_or("");
        let references = [
            (Kind::Zone, operation.fields.get("zone_code")),
            (Kind::Asset, operation.fields.get("asset_code")),
        ];
        for (kind, code) in references {
            let Some(code) = code.and_then(Value::as_str) else {
                continue;
            };
            if gone.contains(&(kind, site.to_string(), code.to_string())) {
                reasons.push(format!(
                    "item {} refers to {} {site}/{code}, which the checker rejected",
                    item.index,
                    kind.as_str()
                ));
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests;
