//! DOCX: paragraphs of `word/document.xml`, with heading styles (Heading 1 to 9, Title) giving
//! section paths and tables flattened to one line per row.
//!
//! The archive is read with limits: at most [`ExtractLimits::max_zip_entries`] entries and
//! [`ExtractLimits::max_unzipped_bytes`] bytes unzipped in all, counted while inflating, so
//! an archive that lies about its sizes is still stopped.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use roxmltree::{Document, Node};
use zip::result::ZipError;
use zip::ZipArchive;

use super::{
    collapse_whitespace, decode_text, ExtractError, ExtractLimits, Extracted, Fact, Format,
    SectionBuilder,
};

/// Level given to the Title style: above Heading 1.
const TITLE_LEVEL: u8 = 0;

/// Steps followed along `basedOn` links between styles, against loops.
const MAX_STYLE_CHAIN: usize = 16;

/// Extracts a DOCX document.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted, ExtractError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|error| {
        ExtractError::invalid(Format::Docx, format!("not a ZIP archive: {error}"))
    })?;
    if archive.len() > limits.max_zip_entries {
        return Err(ExtractError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_zip_entries,
        });
    }

    let mut budget = limits.max_unzipped_bytes;
    let document = read_entry(&mut archive, "word/document.xml", &mut budget, limits)?
        .ok_or_else(|| ExtractError::invalid(Format::Docx, "word/document.xml is missing"))?;
    let styles = read_entry(&mut archive, "word/styles.xml", &mut budget, limits)?;
    let core = read_entry(&mut archive, "docProps/core.xml", &mut budget, limits)?;

    let styles = styles
        .as_deref()
        .and_then(|xml| parse(xml, "word/styles.xml").ok())
        .map(|document| heading_styles(&document))
        .unwrap_or_default();
    let core_title = core
        .as_deref()
        .and_then(|xml| parse(xml, "docProps/core.xml").ok())
        .and_then(|document| core_title(&document));

    let document = parse(&document, "word/document.xml")?;
    let mut reader = BodyReader {
        builder: SectionBuilder::new(),
        styles: &styles,
        hidden_chars: 0,
        deleted_chars: 0,
        first_title: None,
    };
    reader.read(&document, limits.max_depth)?;

    let mut facts = Vec::new();
    if reader.hidden_chars > 0 {
        facts.push(Fact::HiddenTextRemoved {
            chars: reader.hidden_chars,
        });
    }
    if reader.deleted_chars > 0 {
        facts.push(Fact::DeletedTextSkipped {
            chars: reader.deleted_chars,
        });
    }
    Ok(Extracted {
        title: core_title.or(reader.first_title),
        hidden_chars: reader.hidden_chars,
        sections: reader.builder.finish(),
        facts,
    })
}

/// Reads one entry as text, charging its unzipped size to `budget`. A missing entry is `None`.
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
    limits: &ExtractLimits,
) -> Result<Option<String>, ExtractError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(error) => {
            return Err(ExtractError::invalid(
                Format::Docx,
                format!("cannot open {name}: {error}"),
            ))
        }
    };
    let mut data = Vec::new();
    entry
        .take(budget.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|error| {
            ExtractError::invalid(Format::Docx, format!("cannot unzip {name}: {error}"))
        })?;
    let size = data.len() as u64;
    if size > *budget {
        return Err(ExtractError::TooLarge {
            limit: limits.max_unzipped_bytes,
        });
    }
    *budget -= size;
    Ok(Some(decode_text(&data).0))
}

fn parse<'a>(xml: &'a str, name: &str) -> Result<Document<'a>, ExtractError> {
    Document::parse(xml)
        .map_err(|error| ExtractError::invalid(Format::Docx, format!("{name}: {error}")))
}

/// Returns the value of an attribute by local name, whatever its namespace prefix.
fn attribute<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes()
        .find(|attribute| attribute.name() == name)
        .map(|attribute| attribute.value())
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|child| child.tag_name().name() == name)
}

/// Maps paragraph style ids to heading levels, from style names (`heading 1`, `Title`) or
/// outline levels, following `basedOn` links.
fn heading_styles(styles: &Document<'_>) -> HashMap<String, u8> {
    let mut own: HashMap<&str, Option<u8>> = HashMap::new();
    let mut based_on: HashMap<&str, &str> = HashMap::new();
    for style in styles.root_element().children() {
        if style.tag_name().name() != "style" || attribute(style, "type") != Some("paragraph") {
            continue;
        }
        let Some(id) = attribute(style, "styleId") else {
            continue;
        };
        let name = child(style, "name").and_then(|name| attribute(name, "val"));
        let outline = child(style, "pPr")
            .and_then(|properties| child(properties, "outlineLvl"))
            .and_then(|level| attribute(level, "val"));
        own.insert(
            id,
            name.and_then(level_of_name)
                .or_else(|| outline.and_then(outline_level)),
        );
        if let Some(parent) = child(style, "basedOn").and_then(|base| attribute(base, "val")) {
            based_on.insert(id, parent);
        }
    }

    let mut levels = HashMap::new();
    for &id in own.keys() {
        let mut current = id;
        for _ in 0..MAX_STYLE_CHAIN {
            if let Some(level) = own.get(current).copied().flatten() {
                levels.insert(id.to_string(), level);
                break;
            }
            match based_on.get(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
    }
    levels
}

/// Returns the level of a style name or id such as `heading 2`, `Heading2` or `Title`.
fn level_of_name(name: &str) -> Option<u8> {
    let compact: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if compact == "title" {
        return Some(TITLE_LEVEL);
    }
    let digits = compact.strip_prefix("heading")?;
    digits
        .parse::<u8>()
        .ok()
        .filter(|level| (1..=9).contains(level))
}

/// Converts an outline level (0 to 8, or 9 for body text) to a heading level.
fn outline_level(value: &str) -> Option<u8> {
    value
        .parse::<u8>()
        .ok()
        .filter(|level| *level < 9)
        .map(|level| level + 1)
}

fn core_title(core: &Document<'_>) -> Option<String> {
    let title = child(core.root_element(), "title")?;
    let text: String = title
        .descendants()
        .filter(Node::is_text)
        .filter_map(|node| node.text())
        .collect();
    let text = collapse_whitespace(&text);
    (!text.is_empty()).then_some(text)
}

/// Reads the body's paragraphs and tables in order.
struct BodyReader<'a> {
    builder: SectionBuilder,
    styles: &'a HashMap<String, u8>,
    hidden_chars: usize,
    deleted_chars: usize,
    first_title: Option<String>,
}

impl BodyReader<'_> {
    fn read(&mut self, document: &Document<'_>, max_depth: usize) -> Result<(), ExtractError> {
        let body = child(document.root_element(), "body")
            .ok_or_else(|| ExtractError::invalid(Format::Docx, "word/document.xml has no body"))?;

        // Content controls and custom XML wrap paragraphs, so the walk descends into them with
        // an explicit stack rather than recursion.
        let mut stack = vec![body.children()];
        while let Some(children) = stack.last_mut() {
            let Some(node) = children.next() else {
                stack.pop();
                continue;
            };
            match node.tag_name().name() {
                "p" => self.paragraph(node),
                "tbl" => self.table(node),
                "sdt" | "sdtContent" | "customXml" | "smartTag" => {
                    if stack.len() >= max_depth {
                        return Err(ExtractError::TooDeep {
                            format: Format::Docx,
                            limit: max_depth,
                        });
                    }
                    stack.push(node.children());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn paragraph(&mut self, paragraph: Node<'_, '_>) {
        let text = self.paragraph_text(paragraph);
        match self.paragraph_level(paragraph) {
            Some(level) if !text.trim().is_empty() => {
                if level == TITLE_LEVEL && self.first_title.is_none() {
                    self.first_title = Some(collapse_whitespace(&text));
                }
                self.builder.heading(level, &text);
            }
            _ => self.builder.push_paragraph(&text),
        }
    }

    fn paragraph_level(&self, paragraph: Node<'_, '_>) -> Option<u8> {
        let properties = child(paragraph, "pPr")?;
        if let Some(level) = child(properties, "outlineLvl")
            .and_then(|level| attribute(level, "val"))
            .and_then(outline_level)
        {
            return Some(level);
        }
        let style = child(properties, "pStyle").and_then(|style| attribute(style, "val"))?;
        self.styles
            .get(style)
            .copied()
            .or_else(|| level_of_name(style))
    }

    /// Joins the visible text of a paragraph. Hidden runs and tracked deletions are counted
    /// and left out, and field instructions are skipped.
    fn paragraph_text(&mut self, paragraph: Node<'_, '_>) -> String {
        let mut text = String::new();
        for node in paragraph.descendants().filter(Node::is_element) {
            let in_run = node
                .parent()
                .is_some_and(|parent| parent.tag_name().name() == "r");
            let hidden = in_run && node.parent().is_some_and(is_hidden_run);
            match node.tag_name().name() {
                "t" if hidden => {
                    self.hidden_chars += visible_chars(node);
                }
                "t" => text.push_str(node.text().unwrap_or_default()),
                "delText" => self.deleted_chars += visible_chars(node),
                "tab" if in_run && !hidden => text.push('\t'),
                "br" | "cr" if in_run && !hidden => text.push('\n'),
                "noBreakHyphen" if in_run && !hidden => text.push('-'),
                _ => {}
            }
        }
        text
    }

    fn table(&mut self, table: Node<'_, '_>) {
        self.builder.paragraph_break();
        for row in table
            .children()
            .filter(|node| node.tag_name().name() == "tr")
        {
            let cells: Vec<String> = row
                .children()
                .filter(|node| node.tag_name().name() == "tc")
                .map(|cell| {
                    let paragraphs: Vec<String> = cell
                        .descendants()
                        .filter(|node| node.tag_name().name() == "p")
                        .map(|paragraph| self.paragraph_text(paragraph))
                        .collect();
                    collapse_whitespace(&paragraphs.join(" "))
                })
                .collect();
            self.builder.line_break();
            self.builder.push_literal(&cells.join(" | "));
        }
        self.builder.paragraph_break();
    }
}

/// Returns whether a run is marked hidden (`<w:vanish/>` without a false value).
fn is_hidden_run(run: Node<'_, '_>) -> bool {
    child(run, "rPr")
        .and_then(|properties| child(properties, "vanish"))
        .is_some_and(|vanish| !matches!(attribute(vanish, "val"), Some("0" | "false" | "off")))
}

fn visible_chars(node: Node<'_, '_>) -> usize {
    node.text()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_names_give_levels() {
        assert_eq!(level_of_name("heading 1"), Some(1));
        assert_eq!(level_of_name("Heading9"), Some(9));
        assert_eq!(level_of_name("Title"), Some(TITLE_LEVEL));
        assert_eq!(level_of_name("Heading10"), None);
        assert_eq!(level_of_name("Normal"), None);
        assert_eq!(outline_level("0"), Some(1));
        assert_eq!(outline_level("9"), None);
    }

    #[test]
    fn styles_follow_based_on() {
        let xml = r#"<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
            <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
            <w:style w:type="paragraph" w:styleId="Custom"><w:name w:val="My heading"/><w:basedOn w:val="berschrift1"/></w:style>
            <w:style w:type="paragraph" w:styleId="Loop"><w:name w:val="Loop"/><w:basedOn w:val="Loop"/></w:style>
            <w:style w:type="paragraph" w:styleId="Outline"><w:name w:val="Outline"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style>
            </w:styles>"#;
        let document = Document::parse(xml).unwrap();
        let levels = heading_styles(&document);
        assert_eq!(levels.get("berschrift1"), Some(&1));
        assert_eq!(levels.get("Custom"), Some(&1));
        assert_eq!(levels.get("Outline"), Some(&3));
        assert_eq!(levels.get("Loop"), None);
    }

    #[test]
    fn not_a_zip_is_invalid() {
        let error = extract(b"PK\x03\x04garbage", &ExtractLimits::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid DOCX document: not a ZIP archive"),
            "{error}"
        );
    }
}
