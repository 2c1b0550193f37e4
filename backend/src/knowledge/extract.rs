//! Extraction stage: turns the bytes of an uploaded or fetched document into a title and an
//! ordered list of sections, each with the headings above it and its plain text.
//!
//! Input is untrusted. Every format has limits ([`ExtractLimits`]: nesting depth, unzipped size,
//! ZIP entries, PDF pages) and bad input returns an [`ExtractError`] that names the problem and
//! the fix. The PDF parser panics on some malformed files, so it runs under `catch_unwind`.
//! Nothing here touches the network or the database.

mod data;
mod docx;
mod format;
mod html;
mod inflate;
mod markdown;
mod nesting;
mod pdf;
mod text;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use format::Format;

/// Maximum length of a heading in a section path, in characters. Longer headings are cut,
/// because a path is repeated on every chunk of the section.
pub const MAX_HEADING_CHARS: usize = 300;

/// Limits that protect extraction from hostile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Deepest element nesting accepted in HTML, Markdown, XML, DOCX and JSON. JSON is also
    /// bounded at 128 levels by `serde_json`.
    pub max_depth: usize,
    /// Most bytes read out of a DOCX archive, counted while unzipping (not from the sizes the
    /// archive declares).
    pub max_unzipped_bytes: u64,
    /// Most entries a DOCX archive may have.
    pub max_zip_entries: usize,
    /// Most pages read from a PDF.
    pub max_pdf_pages: usize,
    /// Maximum bytes one PDF stream may expand to, counted before the parser inflates it.
    pub max_pdf_stream_bytes: u64,
    /// Maximum bytes all streams of one PDF may expand to together.
    pub max_pdf_inflated_bytes: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_depth: 256,
            max_unzipped_bytes: 100 * 1000 * 1000,
            max_zip_entries: 10_000,
            max_pdf_pages: 5_000,
            max_pdf_stream_bytes: 100 * 1000 * 1000,
            max_pdf_inflated_bytes: 1000 * 1000 * 1000,
        }
    }
}

/// The text of a document, split into sections under their headings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extracted {
    /// Title from the document's metadata (HTML `<title>`, front matter, PDF or DOCX
    /// properties) or its first top-level heading.
    pub title: Option<String>,
    /// Sections in document order, none with empty text.
    pub sections: Vec<Section>,
    /// Characters (whitespace not counted) dropped from hidden HTML elements and hidden DOCX
    /// runs. The count is also listed in `facts`.
    pub hidden_chars: usize,
    /// Removed content and unreadable parts, for reviewers.
    pub facts: Vec<Fact>,
}

/// A run of text under one heading path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Headings above the text, outermost first. Text before the first heading has none.
    pub path: Vec<String>,
    /// The text, with paragraphs separated by a blank line.
    pub text: String,
}

/// Content removed or left unread by extraction, shown to reviewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// Text of elements a reader does not see: the `hidden` attribute, `aria-hidden="true"`,
    /// inline `display:none`, `visibility:hidden`, `font-size:0` or `opacity:0`, and DOCX runs
    /// marked hidden. Counts characters other than whitespace.
    HiddenTextRemoved {
        /// Characters removed.
        chars: usize,
    },
    /// `script`, `style`, `noscript` and `template` elements.
    ScriptsRemoved {
        /// Elements removed.
        elements: usize,
    },
    /// Navigation, page header and footer, and aside text of an HTML page.
    BoilerplateRemoved {
        /// Characters removed, whitespace not counted.
        chars: usize,
    },
    /// YAML or TOML front matter at the start of a Markdown file.
    FrontMatterRemoved {
        /// Characters removed.
        chars: usize,
    },
    /// Liquid template tags (`{{ ... }}`, `{% ... %}`) in a Markdown file with front matter.
    TemplateTagsRemoved {
        /// Tags removed.
        count: usize,
    },
    /// Byte sequences that were not valid UTF-8, replaced with U+FFFD.
    InvalidUtf8Replaced {
        /// Sequences replaced.
        count: usize,
    },
    /// PDF pages without extractable text, such as scanned images.
    PagesWithoutText {
        /// Page numbers, from 1.
        pages: Vec<usize>,
    },
    /// PDF pages whose text could not be read because the parser failed on them.
    PagesUnreadable {
        /// Page numbers, from 1.
        pages: Vec<usize>,
    },
    /// Text a DOCX marks as deleted by tracked changes, which is left out.
    DeletedTextSkipped {
        /// Characters left out.
        chars: usize,
    },
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::HiddenTextRemoved { chars } => {
                write!(f, "hidden text removed: {chars} characters")
            }
            Fact::ScriptsRemoved { elements } => {
                write!(f, "scripts and styles removed: {elements} elements")
            }
            Fact::BoilerplateRemoved { chars } => {
                write!(
                    f,
                    "navigation, header, footer and aside text removed: {chars} characters"
                )
            }
            Fact::FrontMatterRemoved { chars } => {
                write!(f, "front matter removed: {chars} characters")
            }
            Fact::TemplateTagsRemoved { count } => {
                write!(f, "template tags removed: {count}")
            }
            Fact::InvalidUtf8Replaced { count } => {
                write!(f, "invalid UTF-8 replaced: {count} byte sequences")
            }
            Fact::PagesWithoutText { pages } => {
                write!(
                    f,
                    "PDF pages without text (scanned?): {}",
                    join_numbers(pages)
                )
            }
            Fact::PagesUnreadable { pages } => {
                write!(
                    f,
                    "PDF pages that could not be read: {}",
                    join_numbers(pages)
                )
            }
            Fact::DeletedTextSkipped { chars } => {
                write!(f, "tracked deletions left out: {chars} characters")
            }
        }
    }
}

fn join_numbers(numbers: &[usize]) -> String {
    let texts: Vec<String> = numbers.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

/// Error that stops the extraction of a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The content type, file extension or content is not one of the supported formats.
    #[error(
        "unsupported document type {found}; accepted types: {}",
        format::accepted_types()
    )]
    Unsupported {
        /// The content type, extension or description of the bytes found.
        found: String,
    },
    /// The declared type is PDF or DOCX but the bytes are something else.
    #[error(
        "the document is declared as {declared} but its content is {detected}; \
         send it with its real content type or file extension"
    )]
    Mismatch {
        /// The declared content type or extension.
        declared: String,
        /// Description of the bytes.
        detected: String,
    },
    /// The bytes are not a valid document of the format.
    #[error("invalid {format} document: {reason}")]
    Invalid {
        /// The format being read.
        format: Format,
        /// Error message from the parser.
        reason: String,
    },
    /// The PDF needs a password.
    #[error("the PDF is encrypted with a password; upload a copy saved without a password")]
    Encrypted,
    /// Elements nest deeper than [`ExtractLimits::max_depth`].
    #[error(
        "the {format} document nests deeper than {limit} levels; flatten the document or raise \
         the max_depth limit"
    )]
    TooDeep {
        /// The format being read.
        format: Format,
        /// The limit in force.
        limit: usize,
    },
    /// A DOCX unzips to more than [`ExtractLimits::max_unzipped_bytes`].
    #[error(
        "the DOCX unzips to more than {limit} bytes (a ZIP bomb or a very large file); \
         split the document or raise the max_unzipped_bytes limit"
    )]
    TooLarge {
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// A DOCX has more than [`ExtractLimits::max_zip_entries`] entries.
    #[error(
        "the DOCX archive has {count} entries, more than the limit of {limit}; \
         save the document again from a word processor or raise the max_zip_entries limit"
    )]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A PDF has more than [`ExtractLimits::max_pdf_pages`] pages.
    #[error(
        "the PDF has {count} pages, more than the limit of {limit}; split it or raise the \
         max_pdf_pages limit"
    )]
    TooManyPages {
        /// Pages in the document.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A PDF stream expands past [`ExtractLimits::max_pdf_stream_bytes`].
    #[error(
        "a stream in the PDF inflates to more than {limit} bytes (a compression bomb or a very \
         large image); print the document to a new PDF or raise the max_pdf_stream_bytes limit"
    )]
    PdfStreamTooLarge {
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// All streams of a PDF expand past [`ExtractLimits::max_pdf_inflated_bytes`] together.
    #[error(
        "the streams of the PDF inflate to more than {limit} bytes in all; split the document \
         or raise the max_pdf_inflated_bytes limit"
    )]
    PdfInflatesTooFar {
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// The document parsed but contains no text.
    #[error(
        "no text found in the {format} document; scanned pages need OCR, which is not \
         supported, so upload a text version"
    )]
    NoText {
        /// The format read.
        format: Format,
    },
}

impl ExtractError {
    fn invalid(format: Format, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            format,
            reason: reason.to_string(),
        }
    }
}

/// Extracts a document with the default [`ExtractLimits`].
pub fn extract(format: Format, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    extract_with_limits(format, bytes, &ExtractLimits::default())
}

/// Extracts a document of a known format, as found by [`Format::detect`].
pub fn extract_with_limits(
    format: Format,
    bytes: &[u8],
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let mut extracted = match format {
        Format::Pdf => pdf::extract(bytes, limits)?,
        Format::Docx => docx::extract(bytes, limits)?,
        Format::Html => read_text(bytes, |source| {
            html::extract(source, html::Layout::Page, format, limits)
        })?,
        Format::Markdown => read_text(bytes, |source| markdown::extract(source, limits))?,
        Format::Text => read_text(bytes, |source| Ok(text::extract(source)))?,
        Format::Json => read_text(bytes, |source| data::extract_json(source, limits))?,
        Format::Xml => read_text(bytes, |source| data::extract_xml(source, limits))?,
    };

    extracted
        .sections
        .retain(|section| !section.text.trim().is_empty());
    if extracted.sections.is_empty() {
        return Err(ExtractError::NoText { format });
    }
    Ok(extracted)
}

/// Decodes the bytes of a text format and reads them with `read`, recording replaced bytes.
fn read_text(
    bytes: &[u8],
    read: impl FnOnce(&str) -> Result<Extracted, ExtractError>,
) -> Result<Extracted, ExtractError> {
    let (source, replaced) = decode_text(bytes);
    let mut extracted = read(&source)?;
    if replaced > 0 {
        extracted
            .facts
            .push(Fact::InvalidUtf8Replaced { count: replaced });
    }
    Ok(extracted)
}

/// Decodes text bytes: UTF-8 with or without a byte order mark, or UTF-16 with one. Invalid
/// UTF-8 is replaced with U+FFFD, and the number of replaced sequences is returned.
// NOTE: legacy 8-bit encodings (Windows-1252, Latin-1) declared in a charset parameter or a
// `<meta charset>` are read as UTF-8, so their accented letters become U+FFFD.
fn decode_text(bytes: &[u8]) -> (String, usize) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return decode_utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return decode_utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return decode_utf16(rest, u16::from_be_bytes);
    }
    decode_utf8(bytes)
}

fn decode_utf8(bytes: &[u8]) -> (String, usize) {
    let mut text = String::with_capacity(bytes.len());
    let mut replaced = 0;
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
            replaced += 1;
        }
    }
    (text, replaced)
}

fn decode_utf16(bytes: &[u8], to_unit: fn([u8; 2]) -> u16) -> (String, usize) {
    let units = bytes
        .chunks_exact(2)
        .map(|pair| to_unit([pair[0], pair[1]]));
    let mut text = String::with_capacity(bytes.len() / 2);
    let mut replaced = usize::from(bytes.len() % 2 == 1);
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok(c) => text.push(c),
            Err(_) => {
                text.push(char::REPLACEMENT_CHARACTER);
                replaced += 1;
            }
        }
    }
    (text, replaced)
}

/// Collapses runs of whitespace into single spaces and trims both ends.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts a heading to [`MAX_HEADING_CHARS`] characters.
fn cap_heading(heading: String) -> String {
    match heading.char_indices().nth(MAX_HEADING_CHARS) {
        Some((cut, _)) => format!("{}…", heading[..cut].trim_end()),
        None => heading,
    }
}

/// A break waiting to be written before the next text, so that trailing whitespace and
/// repeated breaks never reach the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    None,
    Space,
    Line,
    Paragraph,
}

/// Collects sections while a format's reader reports headings and text in document order.
struct SectionBuilder {
    /// Open headings with their levels. A new heading closes those at its level or deeper.
    headings: Vec<(u8, String)>,
    text: String,
    pending: Pending,
    sections: Vec<Section>,
}

impl SectionBuilder {
    fn new() -> Self {
        Self {
            headings: Vec::new(),
            text: String::new(),
            pending: Pending::None,
            sections: Vec::new(),
        }
    }

    /// Starts a section under a heading of `level` (smaller is outer). Empty headings are
    /// ignored.
    fn heading(&mut self, level: u8, heading: &str) {
        let heading = collapse_whitespace(heading);
        if heading.is_empty() {
            return;
        }
        self.flush();
        while self.headings.last().is_some_and(|(open, _)| *open >= level) {
            self.headings.pop();
        }
        self.headings.push((level, cap_heading(heading)));
    }

    /// Appends text whose whitespace runs count as one space.
    fn push_text(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.space();
            } else {
                self.write_pending();
                self.text.push(c);
            }
        }
    }

    /// Appends preformatted text, keeping its spaces and line breaks.
    fn push_preformatted(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                self.line_break();
            } else {
                self.write_pending();
                self.text.push(c);
            }
        }
    }

    /// Appends text as it is, after any pending break.
    fn push_literal(&mut self, text: &str) {
        self.write_pending();
        self.text.push_str(text);
    }

    /// Appends a block of text as its own paragraph, keeping its line breaks.
    fn push_paragraph(&mut self, text: &str) {
        self.paragraph_break();
        self.push_literal(text.trim());
    }

    fn space(&mut self) {
        self.pending = self.pending.max(Pending::Space);
    }

    fn line_break(&mut self) {
        self.pending = self.pending.max(Pending::Line);
    }

    fn paragraph_break(&mut self) {
        self.pending = Pending::Paragraph;
    }

    fn write_pending(&mut self) {
        if !self.text.is_empty() {
            match self.pending {
                Pending::None => {}
                Pending::Space => self.text.push(' '),
                Pending::Line => self.text.push('\n'),
                Pending::Paragraph => self.text.push_str("\n\n"),
            }
        }
        self.pending = Pending::None;
    }

    /// Ends the current section, dropping it when it has no text.
    fn flush(&mut self) {
        let text = self.text.trim();
        if !text.is_empty() {
            self.sections.push(Section {
                path: self.headings.iter().map(|(_, text)| text.clone()).collect(),
                text: text.to_string(),
            });
        }
        self.text.clear();
        self.pending = Pending::None;
    }

    fn finish(mut self) -> Vec<Section> {
        self.flush();
        self.sections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_nests_headings_by_level() {
        let mut builder = SectionBuilder::new();
        builder.push_text("intro");
        builder.heading(1, "Title");
        builder.heading(2, "Chapter");
        builder.push_text("one");
        builder.heading(3, "Section");
        builder.push_text("two");
        builder.heading(2, "Next chapter");
        builder.push_text("three");
        let sections = builder.finish();

        let paths: Vec<Vec<String>> = sections.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths[0], Vec::<String>::new());
        assert_eq!(paths[1], ["Title", "Chapter"]);
        assert_eq!(paths[2], ["Title", "Chapter", "Section"]);
        assert_eq!(paths[3], ["Title", "Next chapter"]);
        assert_eq!(
            sections.len(),
            4,
            "the heading-only Title section is dropped"
        );
    }

    #[test]
    fn builder_collapses_whitespace_and_breaks() {
        let mut builder = SectionBuilder::new();
        builder.push_text("  a \n b  ");
        builder.line_break();
        builder.paragraph_break();
        builder.push_text("c");
        builder.line_break();
        builder.push_text("  ");
        builder.push_text("d");
        let sections = builder.finish();
        assert_eq!(sections[0].text, "a b\n\nc\nd");
    }

    #[test]
    fn long_heading_is_capped() {
        let heading = cap_heading("é".repeat(MAX_HEADING_CHARS + 5));
        assert_eq!(heading.chars().count(), MAX_HEADING_CHARS + 1);
        assert!(heading.ends_with('…'));
    }

    #[test]
    fn decode_handles_bom_and_invalid_bytes() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFabc"), ("abc".to_string(), 0));
        assert_eq!(decode_text(b"\xFF\xFEa\x00b\x00"), ("ab".to_string(), 0));
        assert_eq!(decode_text(b"\xFE\xFF\x00a\x00b"), ("ab".to_string(), 0));
        assert_eq!(
            decode_text(b"a\xFFb\xC3"),
            ("a\u{FFFD}b\u{FFFD}".to_string(), 2)
        );
    }

    #[test]
    fn empty_document_is_no_text() {
        let error = extract(Format::Text, b"  \n\n ").unwrap_err();
        assert_eq!(
            error,
            ExtractError::NoText {
                format: Format::Text
            }
        );
        assert!(error.to_string().contains("no text found"), "{error}");
    }

    #[test]
    fn invalid_utf8_is_a_fact() {
        let extracted = extract(Format::Text, b"caf\xE9 menu").unwrap();
        assert_eq!(extracted.sections[0].text, "caf\u{FFFD} menu");
        assert_eq!(extracted.facts, [Fact::InvalidUtf8Replaced { count: 1 }]);
    }

    #[test]
    fn facts_read_as_sentences() {
        let fact = Fact::HiddenTextRemoved { chars: 12 };
        assert_eq!(fact.to_string(), "hidden text removed: 12 characters");
        let json = serde_json::to_value(&fact).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "hidden_text_removed", "chars": 12})
        );
        assert_eq!(serde_json::from_value::<Fact>(json).unwrap(), fact);
    }
}
