//! Document formats and their detection from the content type, the file name and the bytes.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::ExtractError;

/// A supported document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// HTML page or fragment.
    Html,
    /// PDF with a text layer.
    Pdf,
    /// Markdown (CommonMark with tables), optionally with front matter.
    Markdown,
    /// Plain text.
    Text,
    /// JSON, flattened to `path: value` lines.
    Json,
    /// XML, flattened to `element/path: text` lines.
    Xml,
    /// Word document (Office Open XML).
    Docx,
}

/// The DOCX content type.
const DOCX_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// Content types that carry no format information, so the file name and bytes decide.
const GENERIC_TYPES: [&str; 4] = [
    "application/octet-stream",
    "binary/octet-stream",
    "application/x-download",
    "application/force-download",
];

impl Format {
    /// Every format.
    pub const ALL: [Format; 7] = [
        Format::Html,
        Format::Pdf,
        Format::Markdown,
        Format::Text,
        Format::Json,
        Format::Xml,
        Format::Docx,
    ];

    /// Returns the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Docx => "docx",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
    }

    /// Returns the usual content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html",
            Format::Pdf => "application/pdf",
            Format::Markdown => "text/markdown",
            Format::Text => "text/plain",
            Format::Json => "application/json",
            Format::Xml => "application/xml",
            Format::Docx => DOCX_TYPE,
        }
    }

    /// Returns the format of a content type, ignoring parameters such as `charset`.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let format = match essence.as_str() {
            "text/html" | "application/xhtml+xml" => Format::Html,
            "application/pdf" | "application/x-pdf" => Format::Pdf,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/plain" => Format::Text,
            "application/json" | "text/json" => Format::Json,
            "application/xml" | "text/xml" => Format::Xml,
            DOCX_TYPE => Format::Docx,
            other if other.ends_with("+json") => Format::Json,
            other if other.ends_with("+xml") => Format::Xml,
            _ => return None,
        };
        Some(format)
    }

    /// Returns the format of a file extension, without the dot, in any case.
    pub fn from_extension(extension: &str) -> Option<Format> {
        let format = match extension.to_ascii_lowercase().as_str() {
            "html" | "htm" | "xhtml" => Format::Html,
            "pdf" => Format::Pdf,
            "md" | "markdown" | "mdown" | "mkd" => Format::Markdown,
            "txt" | "text" => Format::Text,
            "json" => Format::Json,
            "xml" => Format::Xml,
            "docx" => Format::Docx,
            _ => return None,
        };
        Some(format)
    }

    /// Detects the format of a document.
    ///
    /// The bytes decide for PDF and DOCX, whatever was declared, because their signatures are
    /// reliable. A declared PDF or DOCX without its signature is a [`ExtractError::Mismatch`].
    /// Otherwise the content type decides, then the file extension, then a look at the bytes.
    /// `text/plain` on a `.md` file means Markdown, because servers often send Markdown so.
    pub fn detect(
        content_type: Option<&str>,
        file_name: Option<&str>,
        bytes: &[u8],
    ) -> Result<Format, ExtractError> {
        let sniffed = sniff(bytes);
        match sniffed {
            Sniffed::Pdf => return Ok(Format::Pdf),
            Sniffed::Docx => return Ok(Format::Docx),
            Sniffed::Binary(kind) => {
                return Err(ExtractError::Unsupported {
                    found: kind.to_string(),
                })
            }
            Sniffed::Text(_) => {}
        }

        let extension = file_name.and_then(extension);
        let by_extension = extension.and_then(Format::from_extension);
        let declared = content_type
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .filter(|value| !is_generic(value));

        if let Some(declared) = declared {
            return match Format::from_content_type(declared) {
                Some(Format::Pdf | Format::Docx) => Err(ExtractError::Mismatch {
                    declared: declared.to_string(),
                    detected: sniffed.describe().to_string(),
                }),
                Some(Format::Text) if by_extension == Some(Format::Markdown) => {
                    Ok(Format::Markdown)
                }
                Some(format) => Ok(format),
                None => Err(ExtractError::Unsupported {
                    found: declared.to_string(),
                }),
            };
        }

        match by_extension {
            Some(Format::Pdf | Format::Docx) => Err(ExtractError::Mismatch {
                declared: format!(".{}", extension.unwrap_or_default()),
                detected: sniffed.describe().to_string(),
            }),
            Some(format) => Ok(format),
            None => match sniffed {
                Sniffed::Text(format) => Ok(format),
                _ => Err(ExtractError::Unsupported {
                    found: sniffed.describe().to_string(),
                }),
            },
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Format::Html => "HTML",
            Format::Pdf => "PDF",
            Format::Markdown => "Markdown",
            Format::Text => "plain text",
            Format::Json => "JSON",
            Format::Xml => "XML",
            Format::Docx => "DOCX",
        };
        f.write_str(name)
    }
}

/// Lists the accepted formats with their content types and extensions, for error messages.
pub(super) fn accepted_types() -> String {
    let entries: Vec<String> = Format::ALL
        .iter()
        .map(|format| {
            let extension = match format {
                Format::Markdown => "md",
                Format::Text => "txt",
                other => other.as_str(),
            };
            format!("{format} ({}, .{extension})", format.content_type())
        })
        .collect();
    entries.join(", ")
}

fn is_generic(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    GENERIC_TYPES
        .iter()
        .any(|generic| generic.eq_ignore_ascii_case(essence))
}

/// Returns the extension of a file name or URL path, without the dot.
fn extension(file_name: &str) -> Option<&str> {
    let name = file_name
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then_some(extension)
}

/// Format suggested by the first bytes of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Pdf,
    Docx,
    /// A known binary format that is not supported, or unknown binary data.
    Binary(&'static str),
    /// Text, with the format its start suggests.
    Text(Format),
}

impl Sniffed {
    fn describe(self) -> &'static str {
        match self {
            Sniffed::Pdf => "a PDF",
            Sniffed::Docx => "a DOCX",
            Sniffed::Binary(kind) => kind,
            Sniffed::Text(Format::Html) => "HTML text",
            Sniffed::Text(Format::Xml) => "XML text",
            Sniffed::Text(Format::Json) => "JSON text",
            Sniffed::Text(_) => "plain text",
        }
    }
}

/// Signatures of unsupported binary formats, with the name used in errors.
const BINARY_SIGNATURES: [(&[u8], &str); 9] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xFF\xD8\xFF", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1F\x8B", "gzip-compressed data"),
    (
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        "a legacy Office file (.doc or .xls); save it as DOCX",
    ),
    (b"{\\rtf", "an RTF document; save it as DOCX"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
];

fn sniff(bytes: &[u8]) -> Sniffed {
    // The PDF specification lets readers accept the header within the first 1024 bytes.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|window| window == b"%PDF-") {
        return Sniffed::Pdf;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return if zip_has_word_document(bytes) {
            Sniffed::Docx
        } else {
            Sniffed::Binary("a ZIP archive that is not a DOCX (it has no word/document.xml)")
        };
    }
    if let Some((_, kind)) = BINARY_SIGNATURES
        .iter()
        .find(|(signature, _)| bytes.starts_with(signature))
    {
        return Sniffed::Binary(kind);
    }
    let utf16 = bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF");
    if !utf16 && head.contains(&0) {
        return Sniffed::Binary("binary data");
    }
    Sniffed::Text(text_format(head))
}

fn zip_has_word_document(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes))
        .map(|archive| archive.index_for_name("word/document.xml").is_some())
        .unwrap_or(false)
}

/// Guesses a text format from the start of the text.
fn text_format(head: &[u8]) -> Format {
    let text = String::from_utf8_lossy(head);
    let start = text.trim_start_matches('\u{FEFF}').trim_start();
    let lower = start
        .chars()
        .take(200)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        Format::Html
    } else if lower.starts_with("<?xml") || lower.starts_with('<') {
        if lower.contains("<html") {
            Format::Html
        } else {
            Format::Xml
        }
    } else if lower.starts_with('{') || lower.starts_with('[') {
        Format::Json
    } else {
        Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.as_str()), Some(format));
        }
        assert_eq!(Format::parse("doc"), None);
    }

    #[test]
    fn content_type_wins_over_extension() {
        let detected = Format::detect(Some("text/html; charset=utf-8"), Some("a.txt"), b"<p>x");
        assert_eq!(detected, Ok(Format::Html));
        let detected = Format::detect(Some("application/ld+json"), None, b"{}");
        assert_eq!(detected, Ok(Format::Json));
    }

    #[test]
    fn plain_text_markdown_file_is_markdown() {
        let detected = Format::detect(Some("text/plain"), Some("README.md"), b"# Title");
        assert_eq!(detected, Ok(Format::Markdown));
    }

    #[test]
    fn extension_decides_without_content_type() {
        let detected = Format::detect(None, Some("/docs/notes.MD?x=1"), b"# Notes");
        assert_eq!(detected, Ok(Format::Markdown));
        let detected = Format::detect(Some("application/octet-stream"), Some("a.json"), b"[]");
        assert_eq!(detected, Ok(Format::Json));
    }

    #[test]
    fn bytes_decide_without_hints() {
        assert_eq!(
            Format::detect(None, None, b"  <!DOCTYPE html><p>x"),
            Ok(Format::Html)
        );
        assert_eq!(
            Format::detect(None, None, b"<?xml version=\"1.0\"?><a/>"),
            Ok(Format::Xml)
        );
        assert_eq!(Format::detect(None, None, b"{\"a\": 1}"), Ok(Format::Json));
        assert_eq!(
            Format::detect(None, Some("notes.rst"), b"Notes"),
            Ok(Format::Text)
        );
    }

    #[test]
    fn pdf_magic_wins_over_declared_type() {
        let detected = Format::detect(Some("text/html"), Some("page.html"), b"%PDF-1.7\n...");
        assert_eq!(detected, Ok(Format::Pdf));
    }

    #[test]
    fn declared_pdf_without_magic_is_mismatch() {
        let error = Format::detect(Some("application/pdf"), None, b"<html>").unwrap_err();
        assert_eq!(
            error,
            ExtractError::Mismatch {
                declared: "application/pdf".to_string(),
                detected: "HTML text".to_string(),
            }
        );
        assert!(error.to_string().contains("real content type"), "{error}");

        let error = Format::detect(None, Some("report.docx"), b"plain words").unwrap_err();
        assert!(
            matches!(error, ExtractError::Mismatch { ref declared, .. } if declared == ".docx")
        );
    }

    #[test]
    fn unsupported_type_names_type_and_accepted_list() {
        let error = Format::detect(Some("image/svg"), None, b"<svg/>").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("image/svg"), "{message}");
        assert!(message.contains("HTML (text/html, .html)"), "{message}");
        assert!(message.contains(DOCX_TYPE), "{message}");
    }

    #[test]
    fn binary_signatures_are_unsupported() {
        let error = Format::detect(Some("text/plain"), None, b"\x89PNG\r\n\x1a\n....").unwrap_err();
        assert!(error.to_string().contains("a PNG image"), "{error}");
        let error = Format::detect(None, None, b"abc\0def").unwrap_err();
        assert!(error.to_string().contains("binary data"), "{error}");
        let error = Format::detect(None, None, b"PK\x03\x04not really a zip").unwrap_err();
        assert!(error.to_string().contains("not a DOCX"), "{error}");
    }
}
