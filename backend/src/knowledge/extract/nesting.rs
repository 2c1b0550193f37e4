//! A linear scan of HTML tags that estimates element nesting before the HTML parser runs.

/// Elements without content or whose end tag is implied by what follows. Neither kind can
/// build nesting on its own.
const NON_NESTING: [&str; 40] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen", "frame", "basefont", "bgsound", "html", "head", "body", "p", "li",
    "dt", "dd", "option", "optgroup", "rb", "rt", "rtc", "rp", "tr", "td", "th", "thead", "tbody",
    "tfoot", "colgroup", "caption", "a",
];

/// Elements that close an open element of their own kind instead of nesting in it.
const SELF_CLOSING_KINDS: [&str; 10] = [
    "nobr", "button", "form", "h1", "h2", "h3", "h4", "h5", "h6", "image",
];

/// Elements whose content is skipped by the scan: raw text, or foreign markup where `/>`
/// really closes an element.
const SKIPPED_CONTENT: [&str; 9] = [
    "script", "style", "textarea", "title", "xmp", "noembed", "noframes", "svg", "math",
];

/// Estimates element nesting from the tags alone and returns whether it exceeds `limit`.
///
/// html5ever has no depth limit, and some of its insertion steps scan the whole stack of open
/// elements, so 100,000 unclosed `<div>` took over a minute to parse in a test. This linear
/// scan runs first. It counts start tags minus end tags of elements that can nest, and it treats
/// `<div/>` as an open `div`, as HTML parsers do.
pub(super) fn exceeds(source: &str, limit: usize) -> bool {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut position = 0;
    while let Some(offset) = bytes[position..].iter().position(|&byte| byte == b'<') {
        let start = position + offset;
        let rest = &bytes[start..];
        if rest.starts_with(b"<!--") {
            position = find(bytes, start + 4, b"-->").map_or(bytes.len(), |end| end + 3);
            continue;
        }
        let closing = rest.get(1) == Some(&b'/');
        let name_start = start + 1 + usize::from(closing);
        let name_end = bytes[name_start..]
            .iter()
            .position(|byte| !byte.is_ascii_alphanumeric() && *byte != b'-')
            .map_or(bytes.len(), |length| name_start + length);
        if name_end == name_start || !bytes[name_start].is_ascii_alphabetic() {
            position = start + 1;
            continue;
        }
        let name = source[name_start..name_end].to_ascii_lowercase();
        position = find(bytes, name_end, b">").map_or(bytes.len(), |end| end + 1);
        let nests =
            !NON_NESTING.contains(&name.as_str()) && !SELF_CLOSING_KINDS.contains(&name.as_str());
        if closing {
            if nests {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        if SKIPPED_CONTENT.contains(&name.as_str()) {
            position = find_end_tag(bytes, position, name.as_bytes()).unwrap_or(bytes.len());
            continue;
        }
        if nests {
            depth += 1;
            if depth > limit {
                return true;
            }
        }
    }
    false
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|offset| from + offset)
}

/// Finds `</name` in any case, from `from`.
fn find_end_tag(bytes: &[u8], from: usize, name: &[u8]) -> Option<usize> {
    let mut position = from;
    while let Some(start) = find(bytes, position, b"</") {
        let candidate = bytes.get(start + 2..start + 2 + name.len())?;
        if candidate.eq_ignore_ascii_case(name) {
            return Some(start);
        }
        position = start + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_estimates_depth() {
        assert!(exceeds(&"<div/>".repeat(300), 256));
        assert!(exceeds(&"<span class='a>b'>".repeat(300), 256));
        assert!(!exceeds(&"<div></DIV>".repeat(300), 256));
        assert!(!exceeds(
            &"<p>a<li>b<br><img src=x><a href=y>".repeat(300),
            256
        ));
        assert!(!exceeds(
            &format!("<svg>{}</svg>", "<path/>".repeat(300)),
            256
        ));
        assert!(!exceeds(
            &format!("<script>{}</SCRIPT>", "<div>".repeat(300)),
            256
        ));
        assert!(!exceeds(&format!("<!--{}-->", "<div>".repeat(300)), 256));
        assert!(exceeds("<div", 0), "an unterminated tag still counts");
        assert!(!exceeds("a < b </ c <", 0));
    }
}
