//! Plain text: paragraphs split at blank lines, with heading-like lines and regulation
//! paragraph labels turned into section paths.
//!
//! Headings are recognised only on one-line paragraphs, from most to least specific:
//! - a section-symbol line such as `§ 1910.37 Maintenance, safeguards, ...` (level 2);
//! - a setext heading, a line underlined with `===` (level 1) or `---` (level 2);
//! - a numbered title such as `3.2 Fire doors` without final punctuation (level 2 and deeper);
//! - a short line in capitals such as `SUBPART E - EXIT ROUTES` (level 1).
//!
//! Regulations as eCFR renders them label top-level paragraphs `(a)`, `(b)`, ... and start
//! each with a caption sentence. A paragraph that starts with the next expected letter opens
//! a section under the current heading, named by its label and caption, such as
//! `(b) Lighting and marking must be adequate and appropriate`. The letter must follow the
//! previous one, so `(i)` after `(c)` is a roman-numeral subparagraph and stays text.

use std::sync::LazyLock;

use regex::Regex;

use super::{collapse_whitespace, Extracted, SectionBuilder};

/// Level of a paragraph-label section: below every heading kind.
const LABEL_LEVEL: u8 = u8::MAX;

/// Maximum length of a line that can be a heading, in characters.
const MAX_HEADING_LINE_CHARS: usize = 200;

/// Maximum length of the caption in a paragraph-label heading, in characters.
const MAX_CAPTION_CHARS: usize = 150;

static SECTION_SYMBOL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^§{1,2}\s*\d").expect("the section-symbol pattern is valid"));

static NUMBERED_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{1,3}(?:\.\d{1,3}){0,5})\.?\s+\p{Lu}").expect("the numbered pattern is valid")
});

static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\(([a-z])\)\s").expect("the label pattern is valid"));

/// Extracts plain text.
pub(super) fn extract(source: &str) -> Extracted {
    let source = source.replace("\r\n", "\n").replace('\r', "\n");
    let mut builder = SectionBuilder::new();
    let mut title = None;
    let mut next_label = 'a';

    for paragraph in paragraphs(&source) {
        let lines: Vec<&str> = paragraph.lines().collect();
        if let Some((level, heading)) = heading(&lines) {
            if level <= 2 && title.is_none() {
                title = Some(collapse_whitespace(&heading));
            }
            builder.heading(level, &heading);
            next_label = 'a';
            continue;
        }
        if let Some(caption) = label_caption(paragraph, next_label) {
            builder.heading(LABEL_LEVEL, &caption);
            next_label = char::from(next_label as u8 + 1);
        }
        builder.push_paragraph(paragraph);
    }

    Extracted {
        title,
        sections: builder.finish(),
        hidden_chars: 0,
        facts: Vec::new(),
    }
}

/// Splits text at blank lines, dropping empty paragraphs.
fn paragraphs(source: &str) -> impl Iterator<Item = &str> {
    let mut rest = source;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (paragraph, after) = split_at_blank_line(rest);
        rest = after;
        let paragraph = paragraph.trim_matches('\n');
        if !paragraph.trim().is_empty() {
            return Some(paragraph);
        }
    })
}

/// Returns the text before the first blank line and the text after it.
fn split_at_blank_line(text: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() && offset > 0 {
            return (&text[..offset], &text[offset + line.len()..]);
        }
        offset += line.len();
    }
    (text, "")
}

/// Returns the level and text of a paragraph that is a heading.
fn heading(lines: &[&str]) -> Option<(u8, String)> {
    let first = lines.first()?.trim();
    if first.chars().count() > MAX_HEADING_LINE_CHARS {
        return None;
    }
    if let [_, underline] = lines {
        let underline = underline.trim();
        if underline.len() >= 3 && underline.chars().all(|c| c == '=') {
            return Some((1, first.to_string()));
        }
        if underline.len() >= 3 && underline.chars().all(|c| c == '-') {
            return Some((2, first.to_string()));
        }
    }
    if lines.len() != 1 {
        return None;
    }
    if SECTION_SYMBOL.is_match(first) {
        return Some((2, first.to_string()));
    }
    let ends_like_prose = first.ends_with(['.', ',', ';', ':', '?', '!']);
    if first.chars().count() > 80 || ends_like_prose {
        return None;
    }
    if let Some(captures) = NUMBERED_TITLE.captures(first) {
        let depth = captures[1].split('.').count();
        return Some((
            u8::try_from(depth + 1).unwrap_or(LABEL_LEVEL - 1),
            first.to_string(),
        ));
    }
    let letters: Vec<char> = first.chars().filter(|c| c.is_alphabetic()).collect();
    let capitals = letters.len() >= 3 && letters.iter().all(|c| !c.is_lowercase());
    capitals.then(|| (1, first.to_string()))
}

/// Returns `(x) Caption` when the paragraph starts with the label `(expected)`: the label and
/// the text up to the first sentence end or em dash, cut to [`MAX_CAPTION_CHARS`].
fn label_caption(paragraph: &str, expected: char) -> Option<String> {
    let captures = LABEL.captures(paragraph)?;
    if !captures[1].starts_with(expected) {
        return None;
    }
    let label_end = captures.get(0).map_or(0, |found| found.end());
    let rest = &paragraph[label_end..];
    let caption_end = [rest.find(". "), rest.find('\u{2014}'), rest.find('\n')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let caption = rest[..caption_end].trim().trim_end_matches('.');
    let caption = if caption.chars().count() > MAX_CAPTION_CHARS {
        let cut = caption
            .char_indices()
            .nth(MAX_CAPTION_CHARS)
            .map_or(caption.len(), |(index, _)| index);
        let words = caption[..cut]
            .rsplit_once(' ')
            .map_or(&caption[..cut], |(words, _)| words);
        format!("{words}…")
    } else {
        caption.to_string()
    };
    Some(format!("({expected}) {caption}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGULATION: &str = "Source: eCFR\nRetrieved: 2026-10-04\n\n\
        § 1910.37 Maintenance, safeguards, and operational features for exit routes.\n\n\
        (a) The danger to employees must be minimized. (1) Exit routes must be kept free.\n\n\
        (2) Exit routes must be arranged well.\n\n\
        (b) Lighting and marking must be adequate and appropriate. (1) Each exit route must be \
        adequately lighted.\n\n\
        (i) A roman subparagraph stays text.\n\n\
        (c) Toilet facilities\u{2014}(1) General. Provided.\n\n\
        [67 FR 67961, Nov. 7, 2002]\n";

    #[test]
    fn regulation_labels_become_sections() {
        let extracted = extract(REGULATION);
        let heading =
            "§ 1910.37 Maintenance, safeguards, and operational features for exit routes.";
        assert_eq!(extracted.title.as_deref(), Some(heading));

        let sections = &extracted.sections;
        assert_eq!(sections.len(), 4);
        assert!(sections[0].path.is_empty());
        assert_eq!(sections[0].text, "Source: eCFR\nRetrieved: 2026-10-04");
        assert_eq!(
            sections[1].path,
            [heading, "(a) The danger to employees must be minimized"]
        );
        assert!(sections[1]
            .text
            .ends_with("(2) Exit routes must be arranged well."));
        assert_eq!(
            sections[2].path,
            [
                heading,
                "(b) Lighting and marking must be adequate and appropriate"
            ]
        );
        assert!(sections[2]
            .text
            .contains("(i) A roman subparagraph stays text."));
        assert_eq!(sections[3].path, [heading, "(c) Toilet facilities"]);
        assert!(sections[3].text.ends_with("[67 FR 67961, Nov. 7, 2002]"));
    }

    #[test]
    fn labels_must_follow_in_order() {
        let extracted = extract("(b) Not first. Text.\n\n(a) First. Text.\n\n(c) Skipped b.");
        assert_eq!(extracted.sections.len(), 2);
        assert!(extracted.sections[0].path.is_empty());
        assert_eq!(extracted.sections[1].path, ["(a) First"]);
        assert!(extracted.sections[1].text.ends_with("(c) Skipped b."));
    }

    #[test]
    fn generic_headings_detected() {
        let extracted = extract(
            "FIRE SAFETY PLAN\n\nIntro text.\n\n1 Scope\n\nAll buildings.\n\n1.1 Offices\n\n\
             Floors.\n\nEvacuation\n==========\n\nLeave calmly.\n\nThis line ends like prose.\n\nMore.",
        );
        let paths: Vec<&[String]> = extracted
            .sections
            .iter()
            .map(|s| s.path.as_slice())
            .collect();
        assert_eq!(paths[0], ["FIRE SAFETY PLAN"]);
        assert_eq!(paths[1], ["FIRE SAFETY PLAN", "1 Scope"]);
        assert_eq!(paths[2], ["FIRE SAFETY PLAN", "1 Scope", "1.1 Offices"]);
        assert_eq!(paths[3], ["Evacuation"]);
        assert_eq!(
            extracted.sections[3].text,
            "Leave calmly.\n\nThis line ends like prose.\n\nMore."
        );
        assert_eq!(extracted.title.as_deref(), Some("FIRE SAFETY PLAN"));
    }

    #[test]
    fn table_lines_are_not_headings() {
        let extracted = extract("Table J-1\n\nNumber of employees\n\n1 to 15\n\n1");
        assert_eq!(extracted.sections.len(), 1);
        assert!(extracted.sections[0].path.is_empty());
    }

    #[test]
    fn long_caption_is_cut_at_a_word() {
        let paragraph = format!("(a) {} end. Text.", "word ".repeat(60));
        let caption = label_caption(&paragraph, 'a').unwrap();
        assert!(caption.ends_with("word…"), "{caption}");
        assert!(caption.chars().count() <= MAX_CAPTION_CHARS + 5);
    }

    #[test]
    fn text_without_headings_is_one_section() {
        let extracted = extract("Line one.\r\nLine two.\r\n\r\n\r\nSecond paragraph.");
        assert_eq!(extracted.sections.len(), 1);
        assert_eq!(
            extracted.sections[0].text,
            "Line one.\nLine two.\n\nSecond paragraph."
        );
        assert_eq!(extracted.title, None);
    }
}
