//! Recommendations: the maker proposes configuration operations grounded in retrieved
//! knowledge chunks, the checker validates them, and the consensus scores the result.
//!
//! The types here are the maker's and the checker's output. They parse strictly
//! (`deny_unknown_fields`, plus [`Validate`] rules for ranges), so the offline rules in
//! [`offline`] and a model's JSON output go through the same checks. [`parse_maker_output`] and
//! [`parse_checker_output`] add the rules that need context, such as citations naming
//! retrieved chunks only.

pub mod consensus;
pub mod offline;
pub mod runs;
pub mod stages;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::changes::{Operation, MAX_OPERATIONS};
use crate::knowledge::search::SearchHit;
use crate::knowledge::Authority;
use crate::providers::output::{parse_validated, Validate, Violations};

/// Maximum number of citations of one proposal item. Retrieval returns 8 chunks by default.
pub const MAX_CITATIONS: usize = 8;

/// Maximum length of a rationale or finding message, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Lowest confidence adjustment a checker may give an operation.
pub const MIN_ADJUSTMENT: f64 = -0.5;

/// Highest confidence adjustment a checker may give an operation.
pub const MAX_ADJUSTMENT: f64 = 0.2;

/// A knowledge chunk retrieved for a recommendation run: what citing, checking and scoring
/// it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    /// The chunk's id, which citations name.
    pub chunk_id: Uuid,
    /// The document version the chunk belongs to.
    pub document_id: Uuid,
    /// The document's title.
    pub document_title: String,
    /// The source file name or URL, when known.
    pub source: Option<String>,
    /// How much the source is trusted.
    pub authority: Authority,
    /// The chunk's text.
    pub text: String,
    /// Days since the document was published. `None` means the date is unknown, which the
    /// consensus scores as the oldest step.
    pub age_days: Option<f64>,
    /// Cosine similarity between the retrieval query and the chunk, in [-1, 1].
    pub similarity: f64,
    /// Whether ingestion flagged the chunk's document; prompts mark the block flagged. Runs
    /// stored before the flag existed read as not flagged.
    #[serde(default)]
    pub flagged: bool,
}

impl RetrievedChunk {
    /// Converts a search hit, computing its age at `now`. An unknown authority name counts as
    /// low, the least trusted level.
    pub fn from_hit(hit: &SearchHit, now: OffsetDateTime) -> Self {
        let age_days = hit
            .published_at
            .map(|published| ((now - published).as_seconds_f64() / 86_400.0).max(0.0));
        Self {
            chunk_id: hit.chunk_id,
            document_id: hit.document_id,
            document_title: hit.document_title.clone(),
            source: hit.source_url.clone(),
            authority: Authority::parse(&hit.authority).unwrap_or(Authority::Low),
            text: hit.text.clone(),
            age_days,
            similarity: hit.similarity,
            flagged: hit.flagged,
        }
    }
}

/// One proposed operation with its reasons and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalItem {
    /// The change to the configuration.
    pub operation: Operation,
    /// Reason for the operation, in plain English.
    pub rationale: String,
    /// The maker's confidence, in [0, 1].
    pub confidence: f64,
    /// Ids of retrieved chunks that support the operation.
    #[serde(default)]
    pub citations: Vec<Uuid>,
}

/// The maker's output: the proposed operations, parents before children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakerOutput {
    /// The proposal items, in the order they apply.
    pub items: Vec<ProposalItem>,
}

impl Validate for MakerOutput {
    fn validate(&self, errors: &mut Violations) {
        if self.items.is_empty() {
            errors.push("items is empty: propose at least one operation");
        }
        if self.items.len() > MAX_OPERATIONS {
            errors.push(format!(
                "items has {} operations; propose at most {MAX_OPERATIONS}",
                self.items.len()
            ));
        }
        for (index, item) in self.items.iter().enumerate() {
            let path = format!("items[{index}]");
            errors.text(
                &format!("{path}.rationale"),
                &item.rationale,
                MAX_TEXT_CHARS,
            );
            errors.range(&format!("{path}.confidence"), item.confidence, 0.0, 1.0);
            if item.citations.len() > MAX_CITATIONS {
                errors.push(format!(
                    "{path}.citations has {} ids; cite at most {MAX_CITATIONS}",
                    item.citations.len()
                ));
            }
            let distinct: BTreeSet<&Uuid> = item.citations.iter().collect();
            if distinct.len() != item.citations.len() {
                errors.push(format!("{path}.citations repeats a chunk id"));
            }
        }
    }
}

/// Name of the maker's output schema in model requests.
pub const MAKER_SCHEMA_NAME: &str = "siteline_proposal";

/// Name of the checker's output schema in model requests.
pub const CHECKER_SCHEMA_NAME: &str = "siteline_review";

/// Returns the JSON schema of [`MakerOutput`] sent to models. Operation keys and fields differ
/// by kind, so they are open objects here and the schema is not sent as strict. The parse that
/// follows is strict.
pub fn maker_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_OPERATIONS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["operation", "rationale", "confidence", "citations"],
                    "properties": {
                        "operation": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["kind", "action", "key", "fields"],
                            "properties": {
                                "kind": { "type": "string", "enum": crate::providers::prompts::MAKER_KINDS },
                                "action": { "type": "string", "enum": ["create", "update", "delete"] },
                                "key": { "type": "object" },
                                "fields": { "type": "object" }
                            }
                        },
                        "rationale": { "type": "string", "maxLength": MAX_TEXT_CHARS },
                        "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
                        "citations": {
                            "type": "array",
                            "maxItems": MAX_CITATIONS,
                            "items": { "type": "string", "format": "uuid" }
                        }
                    }
                }
            }
        }
    })
}

/// Returns the JSON schema of [`CheckerOutput`] sent to models.
pub fn checker_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["valid", "operations"],
        "properties": {
            "valid": { "type": "boolean" },
            "operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["index", "valid", "errors", "citations", "findings", "adjustment"],
                    "properties": {
                        "index": { "type": "integer", "minimum": 0 },
                        "valid": { "type": "boolean" },
                        "errors": { "type": "array", "items": { "type": "string" } },
                        "citations": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["chunk_id", "supported"],
                                "properties": {
                                    "chunk_id": { "type": "string", "format": "uuid" },
                                    "supported": { "type": "boolean" }
                                }
                            }
                        },
                        "findings": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["category", "passed", "message"],
                                "properties": {
                                    "category": {
                                        "type": "string",
                                        "enum": ["business_rule", "security", "compliance"]
                                    },
                                    "passed": { "type": "boolean" },
                                    "message": { "type": "string", "maxLength": MAX_TEXT_CHARS }
                                }
                            }
                        },
                        "adjustment": {
                            "type": "number",
                            "minimum": MIN_ADJUSTMENT,
                            "maximum": MAX_ADJUSTMENT
                        }
                    }
                }
            }
        }
    })
}

/// Parses and validates a model's maker output. Citations of chunks that were not retrieved are
/// kept here, not repaired: the consensus removes and counts them, so the run shows how often a
/// model invented a source.
pub fn parse_model_maker_output(value: &Value) -> Result<MakerOutput, Vec<String>> {
    parse_validated(value)
}

/// Parses and validates maker output. A citation that names no retrieved chunk is an error, so
/// the repair request can tell the model which ids exist.
pub fn parse_maker_output(
    value: &Value,
    chunks: &[RetrievedChunk],
) -> Result<MakerOutput, Vec<String>> {
    let output: MakerOutput = parse_validated(value)?;
    let known: BTreeSet<Uuid> = chunks.iter().map(|chunk| chunk.chunk_id).collect();
    let mut errors = Vec::new();
    for (index, item) in output.items.iter().enumerate() {
        for id in item.citations.iter().filter(|id| !known.contains(id)) {
            errors.push(format!(
                "items[{index}].citations names {id}, which is not a retrieved chunk: cite only \
                 the ids of the DOCUMENT_CHUNK blocks"
            ));
        }
    }
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(errors)
    }
}

/// The area a checker finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCategory {
    /// Ranges, coverage of operating hours, duplicates, references.
    BusinessRule,
    /// Security settings and risky actions.
    Security,
    /// Regulations and standards from the knowledge base.
    Compliance,
}

/// One rule the checker applied to an operation, and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The area of the rule.
    pub category: FindingCategory,
    /// Whether the operation passes the rule.
    pub passed: bool,
    /// The rule checked and, on failure, the change to make.
    pub message: String,
}

/// The checker's verdict on one citation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitationCheck {
    /// The cited chunk.
    pub chunk_id: Uuid,
    /// Whether the chunk's text supports the operation.
    pub supported: bool,
}

/// The checker's verdict on one proposal item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedOperation {
    /// Position of the item in the maker's output, from 0.
    pub index: usize,
    /// Whether the operation may be applied as it is.
    pub valid: bool,
    /// Reasons it is invalid, empty when valid.
    #[serde(default)]
    pub errors: Vec<String>,
    /// One verdict per citation of the item.
    #[serde(default)]
    pub citations: Vec<CitationCheck>,
    /// Rules applied and their outcomes.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Change to the item's confidence, in [-0.5, 0.2].
    pub adjustment: f64,
}

/// The checker's output for a whole proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckerOutput {
    /// Whether the proposal as a whole may be applied.
    pub valid: bool,
    /// One verdict per proposal item.
    pub operations: Vec<CheckedOperation>,
}

impl CheckerOutput {
    /// Returns the verdict on the item at `index`, if the checker gave one.
    pub fn operation(&self, index: usize) -> Option<&CheckedOperation> {
        self.operations
            .iter()
            .find(|checked| checked.index == index)
    }

    /// Returns the mean adjustment over the operations, 0 when there are none.
    pub fn mean_adjustment(&self) -> f64 {
        if self.operations.is_empty() {
            return 0.0;
        }
        let total: f64 = self
            .operations
            .iter()
            .map(|checked| checked.adjustment)
            .sum();
        total / self.operations.len() as f64
    }
}

impl Validate for CheckerOutput {
    fn validate(&self, errors: &mut Violations) {
        for (position, checked) in self.operations.iter().enumerate() {
            let path = format!("operations[{position}]");
            errors.range(
                &format!("{path}.adjustment"),
                checked.adjustment,
                MIN_ADJUSTMENT,
                MAX_ADJUSTMENT,
            );
            for (number, finding) in checked.findings.iter().enumerate() {
                errors.text(
                    &format!("{path}.findings[{number}].message"),
                    &finding.message,
                    MAX_TEXT_CHARS,
                );
            }
            if !checked.valid && checked.errors.is_empty() {
                errors.push(format!("{path} is invalid but lists no errors"));
            }
        }
    }
}

/// Parses and validates checker output for a proposal of `item_count` items: every item needs
/// exactly one verdict.
pub fn parse_checker_output(
    value: &Value,
    item_count: usize,
) -> Result<CheckerOutput, Vec<String>> {
    let output: CheckerOutput = parse_validated(value)?;
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for checked in &output.operations {
        if checked.index >= item_count {
            errors.push(format!(
                "operations has index {}, but the proposal has {item_count} items (0 to {})",
                checked.index,
                item_count.saturating_sub(1)
            ));
        } else if !seen.insert(checked.index) {
            errors.push(format!("operations has index {} twice", checked.index));
        }
    }
    for missing in (0..item_count).filter(|index| !seen.contains(index)) {
        errors.push(format!("operations has no verdict for index {missing}"));
    }
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
