//! HTML: main text under its h1-h6 headings, without scripts, hidden elements or page
//! furniture, and tables flattened to one line per row.

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use scraper::node::Element;
use scraper::{ElementRef, Html};

use super::nesting;
use super::{
    collapse_whitespace, ExtractError, ExtractLimits, Extracted, Fact, Format, SectionBuilder,
};

/// Whether the HTML is a whole web page or markup rendered from another format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// A web page: read `<main>` or `<article>` when present and drop navigation, page headers
    /// and footers, and asides.
    Page,
    /// Markup rendered from Markdown: read everything that is visible.
    Rendered,
}

/// Reason a subtree is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Script,
    Hidden,
    Boilerplate,
    /// Embedded media, forms and the document head: no reading text.
    NoText,
}

/// Extracts the text of an HTML document. `format` names the source format in errors.
pub(super) fn extract(
    source: &str,
    layout: Layout,
    format: Format,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    if nesting::exceeds(source, limits.max_depth) {
        return Err(ExtractError::TooDeep {
            format,
            limit: limits.max_depth,
        });
    }
    let document = Html::parse_document(source);
    let mut walker = Walker::new(layout, format, limits.max_depth);
    for root in content_roots(&document, layout) {
        walker.walk(root)?;
        walker.builder.paragraph_break();
    }

    let title = page_title(&document).or_else(|| walker.first_h1.clone());
    let mut facts = Vec::new();
    if walker.hidden_chars > 0 {
        facts.push(Fact::HiddenTextRemoved {
            chars: walker.hidden_chars,
        });
    }
    if walker.script_elements > 0 {
        facts.push(Fact::ScriptsRemoved {
            elements: walker.script_elements,
        });
    }
    if walker.boilerplate_chars > 0 {
        facts.push(Fact::BoilerplateRemoved {
            chars: walker.boilerplate_chars,
        });
    }
    Ok(Extracted {
        title,
        hidden_chars: walker.hidden_chars,
        sections: walker.builder.finish(),
        facts,
    })
}

/// Returns the subtrees to read: the first `<main>`, else the outermost `<article>`s, else the
/// body. Rendered markup is always read whole.
fn content_roots(document: &Html, layout: Layout) -> Vec<ElementRef<'_>> {
    let elements = || {
        document
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
    };
    if layout == Layout::Page {
        let main = elements().find(|element| {
            element.value().name() == "main" || has_role(element.value(), &["main"])
        });
        if let Some(main) = main {
            return vec![main];
        }
        let articles: Vec<ElementRef<'_>> = elements()
            .filter(|element| element.value().name() == "article")
            .filter(|element| {
                !element
                    .ancestors()
                    .filter_map(ElementRef::wrap)
                    .any(|ancestor| ancestor.value().name() == "article")
            })
            .collect();
        if !articles.is_empty() {
            return articles;
        }
    }
    let body = elements().find(|element| element.value().name() == "body");
    vec![body.unwrap_or_else(|| document.root_element())]
}

fn page_title(document: &Html) -> Option<String> {
    let title = document
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|element| element.value().name() == "title")?;
    let text = collapse_whitespace(&title.text().collect::<String>());
    (!text.is_empty()).then_some(text)
}

/// Reads a tree in document order without recursion, so deep nesting cannot overflow the
/// stack. Nesting beyond the limit is an error instead.
struct Walker {
    builder: SectionBuilder,
    layout: Layout,
    format: Format,
    max_depth: usize,
    depth: usize,
    /// The element whose subtree is being skipped, and why.
    skipping: Option<(NodeId, Skip)>,
    /// The heading being read: its level and text so far.
    heading: Option<(u8, String)>,
    first_h1: Option<String>,
    /// One entry per open table row: whether it has had a cell yet.
    rows: Vec<bool>,
    cell_depth: usize,
    pre_depth: usize,
    /// Open `main`, `article` and `section` elements. Headers and footers inside them belong
    /// to the content.
    sectioning_depth: usize,
    hidden_chars: usize,
    script_elements: usize,
    boilerplate_chars: usize,
}

impl Walker {
    fn new(layout: Layout, format: Format, max_depth: usize) -> Self {
        Self {
            builder: SectionBuilder::new(),
            layout,
            format,
            max_depth,
            depth: 0,
            skipping: None,
            heading: None,
            first_h1: None,
            rows: Vec::new(),
            cell_depth: 0,
            pre_depth: 0,
            sectioning_depth: 0,
            hidden_chars: 0,
            script_elements: 0,
            boilerplate_chars: 0,
        }
    }

    fn walk(&mut self, root: ElementRef<'_>) -> Result<(), ExtractError> {
        for edge in root.traverse() {
            match edge {
                Edge::Open(node) => {
                    if let Some(element) = node.value().as_element() {
                        self.depth += 1;
                        if self.depth > self.max_depth {
                            return Err(ExtractError::TooDeep {
                                format: self.format,
                                limit: self.max_depth,
                            });
                        }
                        if self.skipping.is_none() {
                            self.open(node.id(), element);
                        }
                    } else if let Some(text) = node.value().as_text() {
                        self.text(text);
                    }
                }
                Edge::Close(node) => {
                    if let Some(element) = node.value().as_element() {
                        self.depth -= 1;
                        match self.skipping {
                            Some((id, _)) if id == node.id() => self.skipping = None,
                            Some(_) => {}
                            None => self.close(element),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, id: NodeId, element: &Element) {
        if let Some(skip) = self.skip_reason(element) {
            if skip == Skip::Script {
                self.script_elements += 1;
            }
            self.skipping = Some((id, skip));
            return;
        }

        let name = element.name();
        if let Some(level) = heading_level(name) {
            if self.heading.is_none() {
                self.builder.paragraph_break();
                self.heading = Some((level, String::new()));
            }
            return;
        }
        match name {
            "br" => self.break_text(false),
            "tr" => {
                self.builder.line_break();
                self.rows.push(false);
            }
            "td" | "th" => {
                if let Some(has_cell) = self.rows.last_mut() {
                    if *has_cell {
                        // The space after the bar is pending, so it merges with the cell's
                        // leading whitespace.
                        self.builder.push_literal(" |");
                        self.builder.space();
                    }
                    *has_cell = true;
                }
                self.cell_depth += 1;
            }
            "pre" => {
                self.break_text(true);
                self.pre_depth += 1;
            }
            "main" | "article" | "section" => {
                self.break_text(true);
                self.sectioning_depth += 1;
            }
            _ if is_line_block(name) => self.break_text(false),
            _ if is_paragraph_block(name) => self.break_text(true),
            _ => {}
        }
    }

    fn close(&mut self, element: &Element) {
        let name = element.name();
        if let Some(level) = heading_level(name) {
            if let Some((open_level, text)) = self.heading.take_if(|(open, _)| *open == level) {
                let text = collapse_whitespace(&text);
                if open_level == 1 && self.first_h1.is_none() && !text.is_empty() {
                    self.first_h1 = Some(text.clone());
                }
                self.builder.heading(open_level, &text);
                self.builder.paragraph_break();
            }
            return;
        }
        match name {
            "tr" => {
                self.rows.pop();
                self.builder.line_break();
            }
            "td" | "th" => self.cell_depth = self.cell_depth.saturating_sub(1),
            "pre" => {
                self.pre_depth = self.pre_depth.saturating_sub(1);
                self.break_text(true);
            }
            "main" | "article" | "section" => {
                self.sectioning_depth = self.sectioning_depth.saturating_sub(1);
                self.break_text(true);
            }
            _ if is_line_block(name) => self.break_text(false),
            _ if is_paragraph_block(name) => self.break_text(true),
            _ => {}
        }
    }

    fn text(&mut self, text: &str) {
        if let Some((_, skip)) = self.skipping {
            let chars = text.chars().filter(|c| !c.is_whitespace()).count();
            match skip {
                Skip::Hidden => self.hidden_chars += chars,
                Skip::Boilerplate => self.boilerplate_chars += chars,
                Skip::Script | Skip::NoText => {}
            }
            return;
        }
        if let Some((_, heading)) = self.heading.as_mut() {
            heading.push_str(text);
        } else if self.pre_depth > 0 && self.cell_depth == 0 {
            self.builder.push_preformatted(text);
        } else {
            self.builder.push_text(text);
        }
    }

    /// Ends a line or paragraph. Inside a table cell or heading a break is only a space,
    /// because a row or heading stays on one line.
    fn break_text(&mut self, paragraph: bool) {
        if let Some((_, heading)) = self.heading.as_mut() {
            heading.push(' ');
        } else if self.cell_depth > 0 {
            self.builder.space();
        } else if paragraph {
            self.builder.paragraph_break();
        } else {
            self.builder.line_break();
        }
    }

    fn skip_reason(&self, element: &Element) -> Option<Skip> {
        let name = element.name();
        if matches!(name, "script" | "style" | "noscript" | "template") {
            return Some(Skip::Script);
        }
        if is_hidden(element) {
            return Some(Skip::Hidden);
        }
        if matches!(
            name,
            "head"
                | "svg"
                | "iframe"
                | "object"
                | "embed"
                | "canvas"
                | "video"
                | "audio"
                | "select"
                | "datalist"
        ) {
            return Some(Skip::NoText);
        }
        if self.layout == Layout::Rendered {
            return None;
        }
        let furniture = matches!(name, "nav" | "aside")
            || has_role(element, &["navigation", "complementary", "search"]);
        let page_edge =
            matches!(name, "header" | "footer") || has_role(element, &["banner", "contentinfo"]);
        (furniture || (page_edge && self.sectioning_depth == 0)).then_some(Skip::Boilerplate)
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Elements that end a line but not a paragraph.
fn is_line_block(name: &str) -> bool {
    matches!(
        name,
        "li" | "dt"
            | "dd"
            | "caption"
            | "thead"
            | "tbody"
            | "tfoot"
            | "option"
            | "summary"
            | "figcaption"
            | "legend"
            | "label"
    )
}

/// Elements that start and end a paragraph.
fn is_paragraph_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "blockquote"
            | "ul"
            | "ol"
            | "dl"
            | "table"
            | "figure"
            | "details"
            | "address"
            | "hr"
            | "form"
            | "fieldset"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "body"
            | "center"
    )
}

fn has_role(element: &Element, roles: &[&str]) -> bool {
    element.attr("role").is_some_and(|value| {
        value
            .split_whitespace()
            .any(|role| roles.iter().any(|wanted| role.eq_ignore_ascii_case(wanted)))
    })
}

/// Returns whether an element is hidden by an attribute or its inline style.
// NOTE: stylesheet rules are not evaluated, so text hidden through a class (such as
// `.visually-hidden`) or off-screen positioning is kept.
fn is_hidden(element: &Element) -> bool {
    if element.attr("hidden").is_some() {
        return true;
    }
    if element
        .attr("aria-hidden")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    element.attr("style").is_some_and(style_hides)
}

/// Returns whether inline CSS declarations hide the element.
fn style_hides(style: &str) -> bool {
    style.split(';').any(|declaration| {
        let Some((property, value)) = declaration.split_once(':') else {
            return false;
        };
        let property = property.trim().to_ascii_lowercase();
        let value = value.to_ascii_lowercase();
        let value = value.trim().trim_end_matches("!important").trim();
        match property.as_str() {
            "display" => value == "none",
            "visibility" => value == "hidden" || value == "collapse",
            "font-size" | "opacity" => is_zero(value),
            _ => false,
        }
    })
}

/// Returns whether a CSS number or length is zero, whatever its unit.
fn is_zero(value: &str) -> bool {
    let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    number.parse::<f64>().is_ok_and(|number| number == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(source: &str) -> Extracted {
        extract(
            source,
            Layout::Page,
            Format::Html,
            &ExtractLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn headings_give_section_paths() {
        let extracted = page(
            "<html><head><title> Exit  routes </title></head><body>\
             <h1>Exit routes</h1><p>Intro.</p><h2>Lighting</h2><p>Lit.</p>\
             <h3>Signs</h3><p>Signs <b>must</b> glow.</p><h2>Doors</h2><p>Unlocked.</p>\
             </body></html>",
        );
        assert_eq!(extracted.title.as_deref(), Some("Exit routes"));
        let sections: Vec<(Vec<String>, String)> = extracted
            .sections
            .into_iter()
            .map(|section| (section.path, section.text))
            .collect();
        assert_eq!(
            sections,
            vec![
                (vec!["Exit routes".into()], "Intro.".into()),
                (vec!["Exit routes".into(), "Lighting".into()], "Lit.".into()),
                (
                    vec!["Exit routes".into(), "Lighting".into(), "Signs".into()],
                    "Signs must glow.".into()
                ),
                (
                    vec!["Exit routes".into(), "Doors".into()],
                    "Unlocked.".into()
                ),
            ]
        );
    }

    #[test]
    fn main_is_preferred_and_furniture_dropped() {
        let extracted = page(
            "<body><header>Site menu</header><nav>Home | About</nav>\
             <main><header><h1>Policy</h1></header><p>Keep exits clear.</p>\
             <aside>Related links</aside></main><footer>Copyright</footer></body>",
        );
        assert_eq!(extracted.sections.len(), 1);
        assert_eq!(extracted.sections[0].path, ["Policy"]);
        assert_eq!(extracted.sections[0].text, "Keep exits clear.");
        assert_eq!(
            extracted.facts,
            [Fact::BoilerplateRemoved {
                chars: "Relatedlinks".len()
            }]
        );
    }

    #[test]
    fn articles_are_read_without_main() {
        let extracted = page(
            "<body><nav>Menu</nav><article><p>First.</p></article><div>Ad</div>\
             <article><p>Second.</p></article></body>",
        );
        assert_eq!(extracted.sections[0].text, "First.\n\nSecond.");
    }

    #[test]
    fn body_header_dropped_when_no_main() {
        let extracted = page("<body><header>Logo</header><p>Text.</p><footer>Foot</footer></body>");
        assert_eq!(extracted.sections[0].text, "Text.");
    }

    #[test]
    fn scripts_and_hidden_elements_dropped() {
        let extracted = page(
            "<p>Visible.</p><script>var secret = 1;</script><style>p{}</style>\
             <noscript>Enable JS</noscript><template><p>tpl</p></template>\
             <p hidden>one</p><div aria-hidden=\"TRUE\">two</div>\
             <span style=\"color: red; display : none !important\">three</span>\
             <span style=\"visibility:hidden\">four</span><span style=\"font-size:0px\">five</span>\
             <span style=\"opacity: 0\">six</span><p style=\"font-size: 0.8em\">Small print.</p>",
        );
        assert_eq!(extracted.sections[0].text, "Visible.\n\nSmall print.");
        assert_eq!(extracted.hidden_chars, "onetwothreefourfivesix".len());
        assert!(extracted
            .facts
            .contains(&Fact::ScriptsRemoved { elements: 4 }));
    }

    #[test]
    fn tables_flatten_to_rows() {
        let extracted = page(
            "<table><caption>Shades</caption><tr><th>Operation</th><th>Shade</th></tr>\
             <tr><td>Welding</td><td><p>10</p></td></tr><tr><td></td><td>11</td></tr></table>\
             <p>After.</p>",
        );
        assert_eq!(
            extracted.sections[0].text,
            "Shades\nOperation | Shade\nWelding | 10\n | 11\n\nAfter."
        );
    }

    #[test]
    fn preformatted_text_keeps_lines() {
        let extracted = page("<pre>line one\n  line two</pre><p>a\n   b</p>");
        assert_eq!(extracted.sections[0].text, "line one\n  line two\n\na b");
    }

    #[test]
    fn rendered_layout_keeps_everything_visible() {
        let extracted = extract(
            "<nav>Steps</nav><main>Main</main><p hidden>x</p>",
            Layout::Rendered,
            Format::Markdown,
            &ExtractLimits::default(),
        )
        .unwrap();
        assert_eq!(extracted.sections[0].text, "Steps\n\nMain");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let source = "<div>".repeat(100_000);
        let error = extract(
            &source,
            Layout::Page,
            Format::Html,
            &ExtractLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            ExtractError::TooDeep {
                format: Format::Html,
                limit: 256
            }
        );
    }

    #[test]
    fn table_nesting_checked_after_parse() {
        let source = "<table><tr><td>".repeat(100);
        let error = extract(
            &source,
            Layout::Page,
            Format::Html,
            &ExtractLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ExtractError::TooDeep { .. }), "{error}");
    }

    #[test]
    fn style_parsing() {
        assert!(style_hides("DISPLAY:NONE"));
        assert!(style_hides("font-size:0"));
        assert!(!style_hides("font-size:10px"));
        assert!(!style_hides("display:block; visibility: visible"));
        assert!(!style_hides("garbage"));
    }
}
