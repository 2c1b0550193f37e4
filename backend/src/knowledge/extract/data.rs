//! JSON and XML: structured data flattened to one `path: value` line per value, in document
//! order, as one section.

use std::fmt;

use roxmltree::{Node, ParsingOptions};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{collapse_whitespace, ExtractError, ExtractLimits, Extracted, Format, SectionBuilder};

/// Extracts JSON as lines such as `site.zones[0].name: Lobby`.
pub(super) fn extract_json(
    source: &str,
    limits: &ExtractLimits,
) -> Result<Extracted, ExtractError> {
    let value: Json = serde_json::from_str(source).map_err(|error| {
        // serde_json stops at 128 levels and reports it as a syntax error.
        if error.to_string().starts_with("recursion limit exceeded") {
            ExtractError::TooDeep {
                format: Format::Json,
                limit: limits.max_depth.min(128),
            }
        } else {
            ExtractError::invalid(Format::Json, error)
        }
    })?;

    let mut builder = SectionBuilder::new();
    // Depth-first with an explicit stack. Children are pushed in reverse to keep their order.
    let mut stack: Vec<(String, &Json, usize)> = vec![(String::new(), &value, 0)];
    while let Some((path, value, depth)) = stack.pop() {
        if depth > limits.max_depth {
            return Err(ExtractError::TooDeep {
                format: Format::Json,
                limit: limits.max_depth,
            });
        }
        match value {
            Json::Object(entries) => {
                for (key, child) in entries.iter().rev() {
                    stack.push((object_path(&path, key), child, depth + 1));
                }
            }
            Json::Array(items) => {
                for (index, child) in items.iter().enumerate().rev() {
                    stack.push((format!("{path}[{index}]"), child, depth + 1));
                }
            }
            Json::String(text) => push_line(&mut builder, &path, text),
            Json::Scalar(text) => push_line(&mut builder, &path, text),
        }
    }

    let title = match &value {
        Json::Object(entries) => entries.iter().find_map(|(key, value)| match value {
            Json::String(title) if key == "title" => Some(collapse_whitespace(title)),
            _ => None,
        }),
        _ => None,
    }
    .filter(|title| !title.is_empty());
    Ok(Extracted {
        title,
        sections: builder.finish(),
        hidden_chars: 0,
        facts: Vec::new(),
    })
}

/// A JSON value that keeps object keys in document order, which `serde_json::Value` does only
/// with a crate feature that would change key order for the whole workspace.
enum Json {
    /// `null`, a boolean or a number, as written.
    Scalar(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Scalar("null".to_string()))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Scalar(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Scalar(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Scalar(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(Json::Scalar(value.to_string()))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// Appends `key` to a JSON path: `a.b` for plain keys, `a["b c"]` for others.
fn object_path(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", serde_json::Value::String(key.to_string())),
    }
}

fn push_line(builder: &mut SectionBuilder, path: &str, value: &str) {
    builder.line_break();
    if path.is_empty() {
        builder.push_literal(value);
    } else {
        builder.push_literal(&format!("{path}: {value}"));
    }
}

/// Extracts XML as lines such as `policy/step: Call the fire service`.
///
/// An element with text of its own becomes one line holding all the text inside it, so mixed
/// content such as `<para>Keep <em>all</em> exits clear</para>` stays one sentence. The path
/// lists element names below the root, which names the single section. Documents with a
/// DOCTYPE are rejected, because entities declared in it could expand a small file into
/// gigabytes of text.
pub(super) fn extract_xml(source: &str, limits: &ExtractLimits) -> Result<Extracted, ExtractError> {
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let document =
        roxmltree::Document::parse_with_options(source, options).map_err(|error| match error {
            roxmltree::Error::DtdDetected => ExtractError::invalid(
                Format::Xml,
                "a DOCTYPE declaration is not accepted, because the entities it can declare \
                 expand without bound; remove the <!DOCTYPE ...> declaration",
            ),
            other => ExtractError::invalid(Format::Xml, other),
        })?;
    let root = document.root_element();

    let mut builder = SectionBuilder::new();
    builder.heading(1, root.tag_name().name());
    let mut stack: Vec<(Node<'_, '_>, String, usize)> = vec![(root, String::new(), 0)];
    while let Some((element, path, depth)) = stack.pop() {
        if depth > limits.max_depth {
            return Err(ExtractError::TooDeep {
                format: Format::Xml,
                limit: limits.max_depth,
            });
        }
        if has_own_text(element) {
            let text = collapse_whitespace(&descendant_text(element));
            let label = if path.is_empty() {
                root.tag_name().name()
            } else {
                &path
            };
            push_line(&mut builder, label, &text);
            continue;
        }
        let children: Vec<Node<'_, '_>> = element.children().filter(Node::is_element).collect();
        for child in children.into_iter().rev() {
            let name = child.tag_name().name();
            let child_path = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            };
            stack.push((child, child_path, depth + 1));
        }
    }

    Ok(Extracted {
        title: None,
        sections: builder.finish(),
        hidden_chars: 0,
        facts: Vec::new(),
    })
}

fn has_own_text(element: Node<'_, '_>) -> bool {
    element
        .children()
        .any(|child| child.is_text() && child.text().is_some_and(|text| !text.trim().is_empty()))
}

/// Joins the text nodes inside an element.
fn descendant_text(element: Node<'_, '_>) -> String {
    element
        .descendants()
        .filter(Node::is_text)
        .filter_map(|node| node.text())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_flattens_to_paths() {
        let extracted = extract_json(
            r#"{"title": "Sites", "site": {"name": "HQ", "zones": [{"code": "L1"}, {"code": "V"}],
                "open 24h": true, "floors": 3, "note": null, "tags": [], "empty": {}}}"#,
            &ExtractLimits::default(),
        )
        .unwrap();
        assert_eq!(extracted.title.as_deref(), Some("Sites"));
        assert_eq!(extracted.sections.len(), 1);
        assert_eq!(
            extracted.sections[0].text,
            "title: Sites\nsite.name: HQ\nsite.zones[0].code: L1\nsite.zones[1].code: V\n\
             site[\"open 24h\"]: true\nsite.floors: 3\nsite.note: null"
        );
    }

    #[test]
    fn json_scalar_root_is_its_value() {
        let extracted = extract_json("\"just text\"", &ExtractLimits::default()).unwrap();
        assert_eq!(extracted.sections[0].text, "just text");
    }

    #[test]
    fn json_depth_is_limited() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let error = extract_json(&deep, &ExtractLimits::default()).unwrap_err();
        assert!(matches!(
            error,
            ExtractError::TooDeep {
                format: Format::Json,
                ..
            }
        ));

        let limits = ExtractLimits {
            max_depth: 3,
            ..ExtractLimits::default()
        };
        let error = extract_json("[[[[[1]]]]]", &limits).unwrap_err();
        assert_eq!(
            error,
            ExtractError::TooDeep {
                format: Format::Json,
                limit: 3
            }
        );
    }

    #[test]
    fn json_syntax_error_is_invalid() {
        let error = extract_json("{\"a\": ", &ExtractLimits::default()).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid JSON document: "),
            "{error}"
        );
    }

    #[test]
    fn xml_flattens_with_element_names() {
        let extracted = extract_xml(
            "<?xml version=\"1.0\"?>\
             <plan><name>ACME &amp; Co fire plan</name><steps><step>Raise the <em>alarm</em>.</step>\
             <step><![CDATA[Leave & assemble.]]></step></steps><!-- note --></plan>",
            &ExtractLimits::default(),
        )
        .unwrap();
        assert_eq!(extracted.sections[0].path, ["plan"]);
        assert_eq!(
            extracted.sections[0].text,
            "name: ACME & Co fire plan\nsteps/step: Raise the alarm.\nsteps/step: Leave & assemble."
        );
    }

    #[test]
    fn xml_errors_are_clear() {
        let error = extract_xml("<a><b></a>", &ExtractLimits::default()).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid XML document: "),
            "{error}"
        );

        let deep = format!("{}x{}", "<a>".repeat(300), "</a>".repeat(300));
        let error = extract_xml(&deep, &ExtractLimits::default()).unwrap_err();
        assert_eq!(
            error,
            ExtractError::TooDeep {
                format: Format::Xml,
                limit: 256
            }
        );
    }

    #[test]
    fn xml_doctype_rejected() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE b [<!ENTITY a \"aaaaaaaaaa\">\
            <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\
            <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\
            <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\
            <!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]><b>&h;</b>";
        let error = extract_xml(bomb, &ExtractLimits::default()).unwrap_err();
        assert!(
            error.to_string().contains("remove the <!DOCTYPE"),
            "{error}"
        );

        let error = extract_xml(
            "<!DOCTYPE a SYSTEM \"a.dtd\"><a>x</a>",
            &ExtractLimits::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("remove the <!DOCTYPE"),
            "{error}"
        );
    }
}
