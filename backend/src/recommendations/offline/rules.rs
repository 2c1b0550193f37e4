//! Knowledge rules of the offline maker: which maintenance tasks and inspections it proposes,
//! which chunk text must back each one, and the searches that retrieve such chunks.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::evidence;
use crate::conversations::facts::{AssetKind, CheckpointSubject, CollectedData};
use crate::recommendations::RetrievedChunk;

/// Unit of a maintenance interval, as `maintenance_schedules.interval_unit` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    /// Days.
    Day,
    /// Weeks.
    Week,
    /// Calendar months.
    Month,
    /// Calendar years.
    Year,
}

impl IntervalUnit {
    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            "year" => Some(Self::Year),
            _ => None,
        }
    }

    /// Returns the longest length of one unit in days (31 for a month, 366 for a year), so a
    /// limit in days holds for every calendar position.
    pub fn max_days(self) -> u32 {
        match self {
            Self::Day => 1,
            Self::Week => 7,
            Self::Month => 31,
            Self::Year => 366,
        }
    }
}

/// A repeat interval: a count of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// How many units.
    pub count: u32,
    /// The unit.
    pub unit: IntervalUnit,
}

impl Interval {
    /// Returns the longest the interval can last, in days.
    pub fn max_days(self) -> u32 {
        self.count * self.unit.max_days()
    }
}

/// A maintenance task the offline maker proposes for an asset kind when a retrieved chunk
/// backs it.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceRule {
    /// The asset kind the task is for.
    pub asset_kind: AssetKind,
    /// The task, in the standard's words where it has them.
    pub task: &'static str,
    /// Steps of the task.
    pub checklist: &'static [&'static str],
    /// Alternatives of phrases that a cited chunk must all contain (lowercase).
    pub evidence: &'static [&'static [&'static str]],
    /// Interval used when the chunk states none.
    pub default_interval: Interval,
    /// Maximum interval in days, because the checker fails a longer schedule.
    pub max_interval_days: u32,
    /// The search that retrieves chunks for this rule.
    pub query: &'static str,
}

/// The maintenance rules, one per asset kind that has one.
pub static MAINTENANCE_RULES: [MaintenanceRule; 4] = [
    MaintenanceRule {
        asset_kind: AssetKind::FireAlarmPanel,
        task: "Test the employee alarm system for reliability and adequacy",
        checklist: &[
            "Use a different actuation device than in the previous test",
            "Confirm that the alarm is perceived above ambient noise and light in every area",
            "Restore the alarm system to normal operating condition after the test",
            "Record the test date, the device used and the result",
        ],
        evidence: &[&["alarm", "test"]],
        // 29 CFR 1910.165(d)(2): non-supervised employee alarm systems are tested every two
        // months, and two calendar months last at most 62 days.
        default_interval: Interval {
            count: 2,
            unit: IntervalUnit::Month,
        },
        max_interval_days: 62,
        query: "employee alarm system maintenance and testing every two months",
    },
    MaintenanceRule {
        asset_kind: AssetKind::FireExtinguisher,
        task: "Inspect portable fire extinguishers",
        checklist: &[
            "Check that each extinguisher is in its place and unobstructed",
            "Check the pressure gauge and the tamper seal",
            "Record the inspection on the extinguisher tag",
        ],
        evidence: &[&["extinguisher", "inspect"]],
        default_interval: Interval {
            count: 1,
            unit: IntervalUnit::Month,
        },
        max_interval_days: 31,
        query: "portable fire extinguisher monthly visual inspection",
    },
    MaintenanceRule {
        asset_kind: AssetKind::SprinklerValve,
        task: "Inspect sprinkler control valves",
        checklist: &[
            "Check that each control valve is open and sealed or locked",
            "Check the system pressure gauges",
            "Record the inspection",
        ],
        evidence: &[&["sprinkler", "valve", "inspect"]],
        default_interval: Interval {
            count: 1,
            unit: IntervalUnit::Month,
        },
        max_interval_days: 31,
        query: "automatic sprinkler system control valve inspection",
    },
    MaintenanceRule {
        asset_kind: AssetKind::Generator,
        task: "Run the emergency generator under load",
        checklist: &[
            "Start the generator and run it under load",
            "Check fuel, oil and coolant levels",
            "Record the run time and any faults",
        ],
        evidence: &[&["generator", "test"]],
        default_interval: Interval {
            count: 1,
            unit: IntervalUnit::Month,
        },
        max_interval_days: 31,
        query: "emergency standby generator load test frequency",
    },
];

/// Returns the maintenance rule for an asset kind, if there is one.
pub fn maintenance_rule(kind: AssetKind) -> Option<&'static MaintenanceRule> {
    MAINTENANCE_RULES
        .iter()
        .find(|rule| rule.asset_kind == kind)
}

/// Phrases that a chunk cited for an exit-route checkpoint must contain, one of them.
pub const EXIT_ROUTE_EVIDENCE: &[&[&str]] = &[&["exit route"], &["exit sign"], &["exit access"]];

/// The search that retrieves exit-route chunks.
pub const EXIT_ROUTE_QUERY: &str = "exit routes kept free and unobstructed, exit signs lit";

/// Questions guards answer at an exit-route checkpoint.
pub const EXIT_ROUTE_QUESTIONS: [&str; 4] = [
    "Is every exit route free and unobstructed, with nothing stored in it?",
    "Can every exit door be opened from the inside without a key?",
    "Is every exit sign lit and visible from the exit access?",
    "Is the exit route lit well enough to see along it?",
];

/// Returns the searches to run for the facts: one per maintenance rule of a named asset kind,
/// and one for exit routes when inspections of them were asked for.
pub fn retrieval_queries(facts: &CollectedData) -> Vec<String> {
    let mut queries = Vec::new();
    let kinds: BTreeSet<AssetKind> = facts.assets.iter().map(|asset| asset.kind).collect();
    for kind in kinds {
        if let Some(rule) = maintenance_rule(kind) {
            queries.push(rule.query.to_string());
        }
    }
    let exit_routes = facts
        .checkpoint_requests
        .iter()
        .any(|request| request.subject == CheckpointSubject::ExitRoutes);
    if exit_routes {
        queries.push(EXIT_ROUTE_QUERY.to_string());
    }
    queries
}

/// Returns whether the chunk contains every phrase of one of the alternatives.
pub fn has_evidence(chunk: &RetrievedChunk, alternatives: &[&[&str]]) -> bool {
    let text = chunk.text.to_lowercase();
    alternatives
        .iter()
        .any(|phrases| phrases.iter().all(|phrase| text.contains(phrase)))
}

/// Picks the chunk that best supports `subject`: among chunks with the evidence phrases and
/// lexical support, the one with the highest support, then authority, then similarity.
pub fn best_chunk<'a>(
    chunks: &'a [RetrievedChunk],
    alternatives: &[&[&str]],
    subject: &BTreeSet<String>,
) -> Option<&'a RetrievedChunk> {
    chunks
        .iter()
        .filter(|chunk| {
            has_evidence(chunk, alternatives) && evidence::supports(subject, &chunk.text)
        })
        .max_by(|a, b| {
            let key = |chunk: &RetrievedChunk| {
                (
                    evidence::support(subject, &chunk.text).0,
                    chunk.authority.weight(),
                    chunk.similarity,
                )
            };
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
}

static STATED_INTERVAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:every|each|once (?:a|every))\s+(two|three|four|six|2|3|4|6)?\s*(day|week|month|year)s?\b|\b(daily|weekly|bi-?monthly|monthly|quarterly|semi-?annually|annually|yearly)\b")
        .expect("interval pattern is valid")
});

/// Returns the shortest interval stated in the text ("every two months", "monthly", "at least
/// annually"), `None` when it states none. The shortest is taken because a schedule that meets
/// the strictest stated interval meets the others too.
pub fn stated_interval(text: &str) -> Option<Interval> {
    let mut shortest: Option<Interval> = None;
    for captures in STATED_INTERVAL.captures_iter(text) {
        let interval = if let Some(word) = captures.get(3) {
            let (count, unit) = match word.as_str().to_lowercase().replace('-', "").as_str() {
                "daily" => (1, IntervalUnit::Day),
                "weekly" => (1, IntervalUnit::Week),
                "bimonthly" => (2, IntervalUnit::Month),
                "monthly" => (1, IntervalUnit::Month),
                "quarterly" => (3, IntervalUnit::Month),
                "semiannually" => (6, IntervalUnit::Month),
                _ => (1, IntervalUnit::Year),
            };
            Interval { count, unit }
        } else {
            let count = match captures.get(1).map(|count| count.as_str()) {
                None => 1,
                Some("two" | "2") => 2,
                Some("three" | "3") => 3,
                Some("four" | "4") => 4,
                Some(_) => 6,
            };
            let unit = match &captures[2].to_lowercase()[..] {
                "day" => IntervalUnit::Day,
                "week" => IntervalUnit::Week,
                "month" => IntervalUnit::Month,
                _ => IntervalUnit::Year,
            };
            Interval { count, unit }
        };
        if shortest.is_none_or(|known| interval.max_days() < known.max_days()) {
            shortest = Some(interval);
        }
    }
    shortest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_interval_picks_shortest() {
        let text = "A test of non-supervised systems is made every two months. Supervised \
                    systems are tested at least annually.";
        let interval = stated_interval(text).unwrap();
        assert_eq!(interval.count, 2);
        assert_eq!(interval.unit, IntervalUnit::Month);
        assert_eq!(interval.max_days(), 62);
        assert_eq!(stated_interval("Inspect monthly.").unwrap().max_days(), 31);
        assert_eq!(
            stated_interval("once a year").unwrap().unit,
            IntervalUnit::Year
        );
        assert_eq!(stated_interval("Keep exit routes clear."), None);
    }

    #[test]
    fn queries_follow_facts() {
        let facts = crate::conversations::facts::extract(
            &CollectedData::default(),
            "We have a fire alarm panel and CCTV cameras. Make sure exit signs get checked.",
        )
        .data;
        let queries = retrieval_queries(&facts);
        assert_eq!(queries.len(), 2, "{queries:?}");
        assert!(queries[0].contains("alarm"));
        assert_eq!(queries[1], EXIT_ROUTE_QUERY);
    }
}
