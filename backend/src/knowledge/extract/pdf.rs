//! PDF: the text layer of each page, read with `pdf-extract` 0.12 (on `lopdf` 0.42), as one
//! section per page named `Page N`.
//!
//! `pdf-extract` panics on many malformed files, so loading and each page run under
//! `catch_unwind`. Two structures would make it recurse without end, which overflows the stack
//! and aborts the process (no unwinding can catch that): a page whose `/Parent` chain loops,
//! and form XObjects that draw each other in a loop. Both are checked before any page is read,
//! and so is the size every compressed stream expands to (see [`super::inflate`]).

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pdf_extract::{Dictionary, Document, Object, ObjectId, PlainTextOutput};

use super::inflate::{self, InflateLimits};
use super::{ExtractError, ExtractLimits, Extracted, Fact, Format, Section};

/// Maximum depth of form XObjects drawing one another. Each level is a nested call in
/// `pdf-extract`.
const MAX_FORM_NESTING: usize = 32;

/// Longest `/Parent` chain from a page to the page tree root.
const MAX_PAGE_TREE_DEPTH: usize = 256;

/// Extracts the text of a PDF.
pub(super) fn extract(bytes: &[u8], limits: &ExtractLimits) -> Result<Extracted, ExtractError> {
    let inflate_limits = InflateLimits {
        stream: limits.max_pdf_stream_bytes,
        total: limits.max_pdf_inflated_bytes,
    };
    inflate::check_raw(bytes, inflate_limits)?;
    let document = match catch_unwind(AssertUnwindSafe(|| load(bytes))) {
        Ok(result) => result?,
        Err(panic) => {
            return Err(ExtractError::invalid(
                Format::Pdf,
                format!("the PDF parser failed: {}", panic_message(&panic)),
            ))
        }
    };

    inflate::check_loaded(&document, inflate_limits)?;

    let pages = document.get_pages();
    if pages.len() > limits.max_pdf_pages {
        return Err(ExtractError::TooManyPages {
            count: pages.len(),
            limit: limits.max_pdf_pages,
        });
    }
    check_page_parents(&document, pages.values().copied())?;
    check_form_nesting(&document)?;

    let mut sections = Vec::new();
    let mut without_text = Vec::new();
    let mut unreadable = Vec::new();
    for (index, &number) in pages.keys().enumerate() {
        let page = index + 1;
        match read_page(&document, number) {
            Ok(text) => {
                let text = join_wrapped_lines(&text);
                if text.trim().is_empty() {
                    without_text.push(page);
                } else {
                    sections.push(Section {
                        path: vec![format!("Page {page}")],
                        text,
                    });
                }
            }
            Err(reason) => {
                tracing::warn!(page, %reason, "PDF page could not be read");
                unreadable.push(page);
            }
        }
    }
    if !pages.is_empty() && unreadable.len() == pages.len() {
        return Err(ExtractError::invalid(
            Format::Pdf,
            "no page could be read; open and save the file again with a PDF tool",
        ));
    }

    let mut facts = Vec::new();
    if !without_text.is_empty() {
        facts.push(Fact::PagesWithoutText {
            pages: without_text,
        });
    }
    if !unreadable.is_empty() {
        facts.push(Fact::PagesUnreadable { pages: unreadable });
    }
    Ok(Extracted {
        title: info_title(&document),
        sections,
        hidden_chars: 0,
        facts,
    })
}

fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let mut document =
        Document::load_mem(bytes).map_err(|error| ExtractError::invalid(Format::Pdf, error))?;
    if document.is_encrypted() {
        // Many PDFs are encrypted with an empty user password only to set permissions.
        document.decrypt("").map_err(|_| ExtractError::Encrypted)?;
    }
    Ok(document)
}

fn read_page(document: &Document, number: u32) -> Result<String, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut text = String::new();
        let mut output = PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(document, &mut output, number).map(|()| text)
    }));
    match result {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(format!("parser panic: {}", panic_message(&panic))),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown error".to_string()
    }
}

/// Joins a line to the previous one when it starts with a lowercase letter, because PDF text
/// comes with the layout's line wraps and a lowercase start continues the sentence.
fn join_wrapped_lines(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    for line in text.lines() {
        let continues = line.trim_start().starts_with(char::is_lowercase)
            && output.ends_with(|c: char| !c.is_whitespace());
        if continues {
            output.push(' ');
            output.push_str(line.trim_start());
        } else {
            if !output.is_empty() {
                output.push('\n');
            }
            output.push_str(line.trim_end());
        }
    }
    output.trim().to_string()
}

/// Rejects a page whose `/Parent` chain loops or is implausibly long.
fn check_page_parents(
    document: &Document,
    pages: impl Iterator<Item = ObjectId>,
) -> Result<(), ExtractError> {
    for page in pages {
        let mut seen = HashSet::from([page]);
        let mut current = page;
        while let Some(parent) = dictionary(document, current)
            .and_then(|node| node.get(b"Parent").ok())
            .and_then(|parent| parent.as_reference().ok())
        {
            if !seen.insert(parent) || seen.len() > MAX_PAGE_TREE_DEPTH {
                return Err(ExtractError::invalid(
                    Format::Pdf,
                    format!(
                        "the page tree loops back at object {} {}",
                        parent.0, parent.1
                    ),
                ));
            }
            current = parent;
        }
    }
    Ok(())
}

/// Rejects form XObjects that can draw each other in a loop, or nest deeper than
/// [`MAX_FORM_NESTING`].
///
/// A form with its own `/Resources` can draw the forms listed there. A form without them uses
/// the resources of whatever draws it, so it is assumed to draw every form listed next to it
/// in any resource dictionary that lists it. That assumption can reject a harmless file, but
/// never lets a loop through.
fn check_form_nesting(document: &Document) -> Result<(), ExtractError> {
    let forms: HashSet<ObjectId> = document
        .objects
        .iter()
        .filter(|(_, object)| is_form(object))
        .map(|(id, _)| *id)
        .collect();
    if forms.is_empty() {
        return Ok(());
    }

    // Every XObject dictionary in the file, as the forms it lists.
    let mut listings: Vec<Vec<ObjectId>> = Vec::new();
    let mut own_listing: HashMap<ObjectId, usize> = HashMap::new();
    for (id, object) in &document.objects {
        let holder = match object {
            Object::Dictionary(dictionary) => dictionary,
            Object::Stream(stream) => &stream.dict,
            _ => continue,
        };
        let Some(resources) = holder
            .get(b"Resources")
            .ok()
            .and_then(|resources| resolve_dictionary(document, resources))
        else {
            continue;
        };
        let listed: Vec<ObjectId> = resources
            .get(b"XObject")
            .ok()
            .and_then(|xobjects| resolve_dictionary(document, xobjects))
            .map(|xobjects| {
                xobjects
                    .iter()
                    .filter_map(|(_, value)| value.as_reference().ok())
                    .filter(|target| forms.contains(target))
                    .collect()
            })
            .unwrap_or_default();
        if forms.contains(id) {
            own_listing.insert(*id, listings.len());
        }
        listings.push(listed);
    }

    let mut edges: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    for &form in &forms {
        let targets = match own_listing.get(&form) {
            Some(&index) => listings[index].clone(),
            None => listings
                .iter()
                .filter(|listed| listed.contains(&form))
                .flatten()
                .copied()
                .collect(),
        };
        edges.insert(form, targets);
    }
    longest_chain(&edges).map(|_| ())
}

/// Walks the form graph depth-first without recursion and returns the longest chain, or an
/// error on a loop or a chain longer than [`MAX_FORM_NESTING`].
fn longest_chain(edges: &HashMap<ObjectId, Vec<ObjectId>>) -> Result<usize, ExtractError> {
    let mut done: HashMap<ObjectId, usize> = HashMap::new();
    let mut on_path: HashSet<ObjectId> = HashSet::new();
    let mut longest = 0;
    let loop_error = |id: ObjectId| {
        ExtractError::invalid(
            Format::Pdf,
            format!("form XObject {} {} draws itself through a loop", id.0, id.1),
        )
    };

    for &start in edges.keys() {
        if done.contains_key(&start) {
            continue;
        }
        let mut stack: Vec<(ObjectId, usize)> = vec![(start, 0)];
        on_path.insert(start);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let targets = edges.get(&node).map_or(&[][..], Vec::as_slice);
            if let Some(&target) = targets.get(*next) {
                *next += 1;
                if on_path.contains(&target) {
                    return Err(loop_error(target));
                }
                if !done.contains_key(&target) {
                    on_path.insert(target);
                    stack.push((target, 0));
                }
                continue;
            }
            let depth = 1 + targets
                .iter()
                .filter_map(|t| done.get(t))
                .max()
                .copied()
                .unwrap_or(0);
            if depth > MAX_FORM_NESTING {
                return Err(ExtractError::invalid(
                    Format::Pdf,
                    format!("form XObjects nest {depth} deep, more than {MAX_FORM_NESTING}"),
                ));
            }
            longest = longest.max(depth);
            done.insert(node, depth);
            on_path.remove(&node);
            stack.pop();
        }
    }
    Ok(longest)
}

fn is_form(object: &Object) -> bool {
    match object {
        Object::Stream(stream) => stream
            .dict
            .get(b"Subtype")
            .ok()
            .and_then(|subtype| subtype.as_name().ok())
            .is_some_and(|name| name == b"Form"),
        _ => false,
    }
}

fn dictionary(document: &Document, id: ObjectId) -> Option<&Dictionary> {
    match document.get_object(id).ok()? {
        Object::Dictionary(dictionary) => Some(dictionary),
        Object::Stream(stream) => Some(&stream.dict),
        _ => None,
    }
}

fn resolve_dictionary<'a>(document: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    match document.dereference(object).ok()?.1 {
        Object::Dictionary(dictionary) => Some(dictionary),
        _ => None,
    }
}

/// Returns the `/Title` of the document information dictionary.
fn info_title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let title = resolve_dictionary(document, info)?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    let text = pdf_extract::decode_text_string(title).ok()?;
    let text = super::collapse_whitespace(&text);
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(number: u32) -> ObjectId {
        (number, 0)
    }

    #[test]
    fn wrapped_lines_are_joined() {
        let text = "• Remain calm & do not hang up, keep the caller on the line\nfor as long as \
                    possible\n• Record the call\n\nDATE:\n  continued here";
        assert_eq!(
            join_wrapped_lines(text),
            "• Remain calm & do not hang up, keep the caller on the line for as long as possible\n\
             • Record the call\n\nDATE: continued here"
        );
    }

    #[test]
    fn form_loops_are_found() {
        let edges = HashMap::from([
            (id(1), vec![id(2)]),
            (id(2), vec![id(3)]),
            (id(3), vec![id(1)]),
        ]);
        let error = longest_chain(&edges).unwrap_err();
        assert!(
            error.to_string().contains("draws itself through a loop"),
            "{error}"
        );

        let edges = HashMap::from([(id(1), vec![id(1)])]);
        assert!(longest_chain(&edges).is_err());
    }

    #[test]
    fn form_chains_are_measured() {
        let edges = HashMap::from([
            (id(1), vec![id(2), id(3)]),
            (id(2), vec![id(3)]),
            (id(3), vec![]),
        ]);
        assert_eq!(longest_chain(&edges), Ok(3));

        let deep: HashMap<ObjectId, Vec<ObjectId>> = (1..=40)
            .map(|number| {
                (
                    id(number),
                    if number < 40 {
                        vec![id(number + 1)]
                    } else {
                        vec![]
                    },
                )
            })
            .collect();
        let error = longest_chain(&deep).unwrap_err();
        assert!(error.to_string().contains("more than 32"), "{error}");
    }

    #[test]
    fn garbage_is_invalid() {
        let error = extract(
            b"%PDF-1.7\nthis is not a PDF body",
            &ExtractLimits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                ExtractError::Invalid {
                    format: Format::Pdf,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("invalid PDF document: "),
            "{error}"
        );
    }
}
