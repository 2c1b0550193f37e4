//! Markdown: front matter removed, rendered to HTML with `pulldown-cmark`, then read like HTML,
//! so `#` headings give section paths, link targets are dropped and inline HTML follows the
//! same hidden-text rules.

use pulldown_cmark::{Options, Parser};

use super::html::{self, Layout};
use super::{ExtractError, ExtractLimits, Extracted, Fact, Format};

/// Liquid tags whose arguments are code or file names, never reader-visible text.
const LIQUID_BUILTIN_TAGS: [&str; 26] = [
    "assign",
    "break",
    "capture",
    "case",
    "comment",
    "continue",
    "cycle",
    "decrement",
    "echo",
    "else",
    "elsif",
    "for",
    "highlight",
    "if",
    "include",
    "include_relative",
    "increment",
    "link",
    "liquid",
    "post_url",
    "raw",
    "render",
    "seo",
    "tablerow",
    "unless",
    "when",
];

/// Extracts a Markdown document.
pub(super) fn extract(source: &str, limits: &ExtractLimits) -> Result<Extracted, ExtractError> {
    let front_matter = split_front_matter(source);
    let body = front_matter
        .as_ref()
        .map_or(source, |front_matter| front_matter.body);

    // Jekyll and similar generators run Liquid only on files with front matter, so only those
    // have their tags removed. Elsewhere `{{` may be real text.
    let (body, tags_removed) = if front_matter.is_some() {
        strip_liquid(body)
    } else {
        (body.to_string(), 0)
    };

    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut rendered = String::with_capacity(body.len() + body.len() / 2);
    pulldown_cmark::html::push_html(&mut rendered, Parser::new_ext(&body, options));
    let mut extracted = html::extract(&rendered, Layout::Rendered, Format::Markdown, limits)?;

    let mut facts = Vec::new();
    if let Some(front_matter) = &front_matter {
        facts.push(Fact::FrontMatterRemoved {
            chars: front_matter.chars,
        });
        if front_matter.title.is_some() {
            extracted.title.clone_from(&front_matter.title);
        }
    }
    if tags_removed > 0 {
        facts.push(Fact::TemplateTagsRemoved {
            count: tags_removed,
        });
    }
    facts.append(&mut extracted.facts);
    extracted.facts = facts;
    Ok(extracted)
}

/// Front matter found at the start of a file.
#[derive(Debug, PartialEq, Eq)]
struct FrontMatter<'a> {
    /// The `title` value, when it is a plain one-line string.
    title: Option<String>,
    /// Characters removed, delimiters included.
    chars: usize,
    /// The text after the front matter.
    body: &'a str,
}

/// Finds YAML (`---` ... `---` or `...`) or TOML (`+++` ... `+++`) front matter opening on
/// the first line. Without a closing line there is no front matter, and `---` stays Markdown
/// (a thematic break).
fn split_front_matter(source: &str) -> Option<FrontMatter<'_>> {
    let first_line_end = source.find('\n').unwrap_or(source.len());
    let opening = source[..first_line_end].trim_end();
    let (closings, toml): (&[&str], bool) = match opening {
        "---" => (&["---", "..."], false),
        "+++" => (&["+++"], true),
        _ => return None,
    };

    let mut offset = first_line_end + 1;
    let mut title = None;
    while offset <= source.len() {
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |index| offset + index);
        let line = source[offset..line_end].trim_end();
        if closings.contains(&line) {
            let body_start = (line_end + 1).min(source.len());
            return Some(FrontMatter {
                title,
                chars: source[..body_start].chars().count(),
                body: &source[body_start..],
            });
        }
        if title.is_none() {
            title = title_value(line, toml);
        }
        offset = line_end + 1;
    }
    None
}

/// Reads `title: value` (YAML) or `title = "value"` (TOML) at the top level.
fn title_value(line: &str, toml: bool) -> Option<String> {
    let separator = if toml { '=' } else { ':' };
    let (key, value) = line.split_once(separator)?;
    if key.trim_end() != "title" || key.starts_with(char::is_whitespace) {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|quote| {
            value
                .strip_prefix(*quote)
                .and_then(|rest| rest.strip_suffix(*quote))
        })
        .unwrap_or(value);
    // Block scalars (`|`, `>`) and empty values are not one-line titles.
    let plain = !unquoted.is_empty() && !matches!(unquoted.chars().next(), Some('|' | '>'));
    plain.then(|| unquoted.to_string())
}

/// Removes Liquid output tags (`{{ ... }}`) and statement tags (`{% ... %}`). A custom block
/// tag such as `{% details Advisory 101.1 %}` keeps its arguments as a paragraph, because such
/// tags usually take a label that is shown to the reader. Returns the text and the number of
/// tags removed.
fn strip_liquid(source: &str) -> (String, usize) {
    let mut output = String::with_capacity(source.len());
    let mut removed = 0;
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let after = &rest[start..];
        let (close, statement) = if after.starts_with("{{") {
            ("}}", false)
        } else if after.starts_with("{%") {
            ("%}", true)
        } else {
            output.push_str(&rest[..=start]);
            rest = &rest[start + 1..];
            continue;
        };
        let Some(end) = after[2..].find(close) else {
            break;
        };
        output.push_str(&rest[..start]);
        removed += 1;
        if statement {
            let inner = after[2..2 + end].trim_matches(|c: char| c == '-' || c.is_whitespace());
            let (tag, arguments) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
            let visible = !tag.starts_with("end") && !LIQUID_BUILTIN_TAGS.contains(&tag);
            if visible && !arguments.trim().is_empty() {
                output.push_str("\n\n");
                output.push_str(arguments.trim());
                output.push_str("\n\n");
            }
        }
        rest = &after[2 + end + close.len()..];
    }
    output.push_str(rest);
    (output, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markdown(source: &str) -> Extracted {
        extract(source, &ExtractLimits::default()).unwrap()
    }

    #[test]
    fn headings_give_paths_and_links_lose_targets() {
        let extracted = markdown(
            "# Title 15\n\n### Chapter 49\n\n#### § 2227\n\nSee [the code](/uscode/15/2227) \
             and [notes][1].\n\n[1]: /notes\n\n## Other {#other}\n\nText.",
        );
        assert_eq!(extracted.title.as_deref(), Some("Title 15"));
        assert_eq!(
            extracted.sections[0].path,
            ["Title 15", "Chapter 49", "§ 2227"]
        );
        assert_eq!(extracted.sections[0].text, "See the code and notes.");
        assert_eq!(extracted.sections[1].path, ["Title 15", "Other"]);
    }

    #[test]
    fn yaml_front_matter_removed() {
        let source = "---\ntitle: \"Parking: restriping\"\nlead: |-\n  text\n---\nBody text.\n";
        let extracted = markdown(source);
        assert_eq!(extracted.title.as_deref(), Some("Parking: restriping"));
        assert_eq!(extracted.sections[0].text, "Body text.");
        assert_eq!(
            extracted.facts,
            [Fact::FrontMatterRemoved {
                chars: source.find("Body").unwrap()
            }]
        );
    }

    #[test]
    fn toml_front_matter_removed() {
        let extracted = markdown("+++\ntitle = 'Fire plan'\n+++\n# Scope\nAll sites.");
        assert_eq!(extracted.title.as_deref(), Some("Fire plan"));
        assert_eq!(extracted.sections[0].path, ["Scope"]);
        assert_eq!(extracted.sections[0].text, "All sites.");
    }

    #[test]
    fn unclosed_front_matter_is_markdown() {
        assert_eq!(split_front_matter("---\nno end\n"), None);
        assert_eq!(split_front_matter("text\n---\n"), None);
    }

    #[test]
    fn liquid_tags_removed_with_labels_kept() {
        let (text, removed) = strip_liquid(
            "A {{ page.x | relative_url }}.\n{% details Advisory 101.1 General. %}\nBody\n\
             {% enddetails %}\n{% include nav.html %}{ plain }",
        );
        assert_eq!(removed, 4);
        assert_eq!(
            text,
            "A .\n\n\nAdvisory 101.1 General.\n\n\nBody\n\n{ plain }"
        );
    }

    #[test]
    fn liquid_kept_without_front_matter() {
        let extracted = markdown("Use {{ name }} in templates.");
        assert_eq!(extracted.sections[0].text, "Use {{ name }} in templates.");
    }

    #[test]
    fn pathological_nesting_is_fast() {
        let started = std::time::Instant::now();
        let quotes = extract(
            &format!("{}x", "> ".repeat(100_000)),
            &ExtractLimits::default(),
        );
        assert!(matches!(
            quotes,
            Err(ExtractError::TooDeep {
                format: Format::Markdown,
                ..
            })
        ));
        let lists = extract(
            &format!("{}x", "- ".repeat(100_000)),
            &ExtractLimits::default(),
        );
        assert!(matches!(lists, Err(ExtractError::TooDeep { .. })));
        let emphasis = extract(
            &format!("{}x{}", "*a ".repeat(50_000), "a* ".repeat(50_000)),
            &ExtractLimits::default(),
        );
        assert!(matches!(emphasis, Err(ExtractError::TooDeep { .. })));
        let links = extract(&"[a](".repeat(50_000), &ExtractLimits::default());
        assert!(links.is_ok());
        assert!(
            started.elapsed().as_secs() < 20,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn html_tables_and_hidden_html_in_markdown() {
        let extracted = markdown(
            "| Spaces | Accessible |\n|---|---|\n| 1 to 25 | 1 |\n\n\
             <table><tr><th>A</th><td>B</td></tr></table>\n\n<p hidden>secret</p>\n\nEnd.",
        );
        assert_eq!(
            extracted.sections[0].text,
            "Spaces | Accessible\n1 to 25 | 1\n\nA | B\n\nEnd."
        );
        assert_eq!(extracted.hidden_chars, 6);
    }
}
