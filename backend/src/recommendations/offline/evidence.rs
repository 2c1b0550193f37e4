//! Lexical evidence: whether a chunk's text supports an operation, measured by shared words,
//! because the offline rules have no language model to judge meaning.
//!
//! Both sides become sets of terms: lowercase words of three or more letters, without common
//! English stop words, with plural and past-tense endings cut ("tested" and "tests" both become
//! "test"). Support is the share of the operation's terms that also occur in the chunk.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::changes::Operation;

/// Minimum share of an operation's terms that a chunk must contain to support it.
///
/// Set between two measurements on the sample corpus of OSHA and ADA texts cut into pieces of
/// 1,200 characters. The pieces of the sections a rule follows (29 CFR 1910.165 for alarm
/// tests, 1910.36 and 1910.37 for exit routes) share 0.40 to 0.50 of the terms of the offline
/// maker's operations, and every other piece shares at most 0.30. It is an estimate from those
/// few documents, not a calibrated rate, and a model's wording of an operation may score lower.
pub const SUPPORT_THRESHOLD: f64 = 0.35;

/// Minimum number of distinct shared terms, so that a one-word subject cannot be supported by
/// any chunk that happens to contain that word.
pub const MIN_SHARED_TERMS: usize = 3;

const STOP_WORDS: [&str; 60] = [
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "has", "have", "his", "how", "its", "may", "new", "now", "see", "who",
    "did", "get", "let", "she", "too", "use", "with", "that", "this", "from", "they", "will",
    "each", "been", "into", "more", "must", "shall", "such", "than", "them", "then", "there",
    "these", "those", "when", "where", "which", "while", "what", "also", "only", "other", "their",
];

/// Returns the terms of a text.
pub fn terms(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() >= 3 && word.chars().all(char::is_alphabetic))
        .filter(|word| !STOP_WORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .collect()
}

/// Cuts common English endings: "inspections" → "inspection", "tested" → "test",
/// "batteries" → "battery".
fn stem(word: &str) -> String {
    if let Some(base) = word.strip_suffix("ies") {
        if base.len() >= 3 {
            return format!("{base}y");
        }
    }
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(base) = word.strip_suffix(suffix) {
            let keeps_double_s = suffix == "s" && base.ends_with('s');
            if base.len() >= 3 && !keeps_double_s {
                return base.to_string();
            }
        }
    }
    word.to_string()
}

/// Returns the share of `subject` terms found in `text`, and how many were found.
pub fn support(subject: &BTreeSet<String>, text: &str) -> (f64, usize) {
    if subject.is_empty() {
        return (0.0, 0);
    }
    let found = terms(text);
    let shared = subject.intersection(&found).count();
    (shared as f64 / subject.len() as f64, shared)
}

/// Returns whether `text` supports an operation whose terms are `subject`: both thresholds
/// are met.
pub fn supports(subject: &BTreeSet<String>, text: &str) -> bool {
    let (share, shared) = support(subject, text);
    share >= SUPPORT_THRESHOLD && shared >= MIN_SHARED_TERMS
}

/// Fields whose text describes what an operation is about. Codes, time zones and enumerated
/// settings such as severity are left out, because they name this site, not the subject.
const DESCRIPTIVE_FIELDS: [&str; 6] = [
    "name",
    "kind",
    "asset_kind",
    "task",
    "checklist",
    "questions",
];

/// Returns the terms that describe an operation: its kind's words and the text of its
/// descriptive fields (names, kinds, tasks, questions, checklists).
pub fn operation_terms(operation: &Operation) -> BTreeSet<String> {
    let mut text = operation.kind.as_str().replace('_', " ");
    for field in DESCRIPTIVE_FIELDS {
        if let Some(value) = operation.fields.get(field) {
            collect_text(value, &mut text);
        }
    }
    terms(&text)
}

fn collect_text(value: &Value, text: &mut String) {
    match value {
        Value::String(string) => {
            text.push(' ');
            text.push_str(&string.replace(['_', '-'], " "));
        }
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, text)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_stop_words_and_endings() {
        let found = terms("The employer shall assure that alarms are tested every two months.");
        let expected: BTreeSet<String> = [
            "employer", "assure", "alarm", "test", "every", "two", "month",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn stem_keeps_double_s_and_short_words() {
        assert_eq!(stem("access"), "access");
        assert_eq!(stem("batteries"), "battery");
        assert_eq!(stem("signs"), "sign");
        assert_eq!(stem("bus"), "bus");
    }

    #[test]
    fn support_needs_share_and_count() {
        let subject = terms("test the fire alarm system every two months");
        assert!(supports(
            &subject,
            "A test of employee alarm systems is made every two months."
        ));
        assert!(!supports(
            &subject,
            "Exit routes must be kept free and unobstructed."
        ));
        let single = terms("alarm");
        assert!(
            !supports(&single, "alarm alarm alarm"),
            "one shared word is too few"
        );
        assert_eq!(support(&BTreeSet::new(), "anything"), (0.0, 0));
    }
}
