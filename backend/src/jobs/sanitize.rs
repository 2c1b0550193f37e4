//! Redaction of secrets and personal data in the payloads of failed jobs, before they are stored
//! as dead letters that admins read and search.
//!
//! Two kinds of evidence are used:
//!
//! - A sensitive key replaces the whole value under it with [`REDACTED`], whatever its type. Keys
//!   are compared after normalization (lowercase, without `-`, `_`, spaces and dots), so
//!   `X-Api-Key`, `api_key`, `apiKey` and `API KEY` are the same key. Strong words
//!   (`password`, `secret`, `token`, `apikey`, `cookie`, ...) match anywhere inside a key, as in
//!   `db_password` or `githubToken`. Short or common words (`pin`, `otp`, `session`, `pwd`) match
//!   only the whole key, because inside longer keys they mostly mean something else (`pinned`).
//!   The same key test applies to header pairs (`[["Authorization", "..."]]`), to
//!   `{"name": ..., "value": ...}` objects, and to command-line flags (`--api-key VALUE`).
//! - Sensitive text is masked inside every string, wherever it sits. It covers email addresses,
//!   phone numbers, payment card numbers that pass the Luhn check, `Bearer`/`Basic` credentials,
//!   JWTs, vendor API tokens, Slack and Discord webhook paths, and URL passwords. It also covers
//!   the value of `key=value`, `key: value` and `--flag value` when the key is sensitive. Object
//!   keys go through the same masking, because maps are often keyed by email.
//!
//! Everything else is copied unchanged. A value nested deeper than [`MAX_DEPTH`] is replaced by
//! [`TOO_DEEP`], so the recursion is bounded whatever the input. The tests check on every table
//! case that sanitizing an output again changes nothing.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Captures, Match, Regex};
use serde_json::{Map, Number, Value};

/// Replacement for a value under a sensitive key, after a sensitive flag or after `key=`.
pub const REDACTED: &str = "[redacted]";

/// Replacement for an email address found in text.
pub const REDACTED_EMAIL: &str = "[redacted email]";

/// Replacement for a phone number found in text.
pub const REDACTED_PHONE: &str = "[redacted phone]";

/// Replacement for a payment card number found in text or stored as a JSON number.
pub const REDACTED_CARD: &str = "[redacted card]";

/// Replacement for a bearer credential, a JWT or a vendor API token found in text.
pub const REDACTED_TOKEN: &str = "[redacted token]";

/// Replacement for a value nested deeper than [`MAX_DEPTH`].
pub const TOO_DEEP: &str = "[redacted: nested too deep]";

/// Maximum nesting depth that is copied. The top-level value is at depth 0.
pub const MAX_DEPTH: usize = 64;

/// Every marker this module writes, so that a second pass recognizes its own output.
const MARKERS: &[&str] = &[
    REDACTED,
    REDACTED_EMAIL,
    REDACTED_PHONE,
    REDACTED_CARD,
    REDACTED_TOKEN,
    TOO_DEEP,
];

/// Normalized keys that are sensitive only as a whole key.
const SENSITIVE_KEYS: &[&str] = &[
    "pwd",
    "auth",
    "session",
    "hmac",
    "otp",
    "totp",
    "mfacode",
    "pin",
    "cvv",
    "cvv2",
    "cvc",
    "ccnumber",
    "ssn",
    "socialsecuritynumber",
    "iban",
    "passportnumber",
    "dob",
    "dateofbirth",
    "birthdate",
    "accesskey",
    "accesskeyid",
    "signingkey",
    "encryptionkey",
    "masterkey",
];

/// Words that make any normalized key containing them sensitive.
const SENSITIVE_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
    "sessionid",
    "signature",
    "cardnumber",
    "creditcard",
];

/// Continuations that turn a key part into an ordinary word: `tokenizer`, `tokenise` and
/// `tokenization` name text processing, and `secretary` is a job title.
const KEY_PART_EXCEPTIONS: &[(&str, &[&str])] =
    &[("token", &["iz", "ise", "isa"]), ("secret", &["ar"])];

/// Endings of normalized keys that name a count, size or duration, such as `max_tokens` or
/// `password_length`. A numeric value under such a key is kept even when the key contains a
/// sensitive word, because a number there measures the secret instead of being it.
const MEASURE_SUFFIXES: &[&str] = &[
    "tokens",
    "count",
    "counts",
    "length",
    "len",
    "size",
    "limit",
    "ttl",
    "seconds",
    "days",
    "expiresin",
    "expiresat",
    "expiry",
];

/// Normalized keys that hold the name in `{"name": "Authorization", "value": "..."}` objects.
const NAME_FIELDS: &[&str] = &["name", "key", "header", "field", "param", "parameter"];

/// Normalized keys that hold the value in those name/value objects.
const VALUE_FIELDS: &[&str] = &["value", "values"];

/// HTTP authentication schemes whose credential follows after a space.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "digest", "negotiate", "token"];

/// Characters that end an unquoted value in `key=value` text, besides whitespace.
const BARE_VALUE_ENDS: &[char] = &['&', ';', ',', '"', '\'', '<', '>', '(', ')', '{', '}'];

/// A word that may be a key in `key=value`, `key: value` or `--flag value` text.
static KEY_WORD: LazyLock<Regex> = LazyLock::new(|| compile(r"-{0,2}[A-Za-z][A-Za-z0-9_.\-]*"));

/// The password in a URL's user information: `scheme://user:password@host`.
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):([^\s/@]+)@"));

/// An HTTP `Bearer` or `Basic` credential outside a header line.
static AUTH_CREDENTIAL: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9\-._~+/]+=*)"));

/// JWTs and API tokens with a well-known prefix: OpenAI and Anthropic (`sk-`), Stripe, this
/// product's own `slt_` tokens, GitHub, GitLab, Slack, AWS access key ids, Google and npm.
static VENDOR_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
        r"|\b(?:sk-[A-Za-z0-9_\-]{16,}",
        r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",
        r"|slt_[A-Za-z0-9_\-]{8,}",
        r"|gh[pousr]_[A-Za-z0-9]{20,}",
        r"|github_pat_[A-Za-z0-9_]{20,}",
        r"|glpat-[A-Za-z0-9_\-]{20,}",
        r"|xox[abposr]-[A-Za-z0-9\-]{10,}",
        r"|(?:AKIA|ASIA)[A-Z0-9]{16}\b",
        r"|AIza[A-Za-z0-9_\-]{35}",
        r"|npm_[A-Za-z0-9]{36})",
    ))
});

/// An email address, also with its `@` percent-encoded as in a URL query.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
});

/// A run of 13 to 19 digits with single spaces or dashes between them.
static CARD_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b[0-9](?:[ \-]?[0-9]){12,18}\b"));

/// Shapes of phone numbers: international with `+`, `(555) 123-4567`, and three or more groups
/// of up to 5 digits split by spaces, dots or dashes. [`is_phone_number`] then checks the digit count.
static PHONE_CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"\+[0-9]{1,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}",
        r"|\([0-9]{3}\)[ .\-]?[0-9]{3}[ .\-]?[0-9]{4}\b",
        r"|\b[0-9]{1,5}(?:[ .\-][0-9]{2,5}){2,5}\b",
    ))
});

/// UUIDs, dates and times: digit groups that a phone or card candidate must not overlap.
static NOT_A_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
        r"|[0-9]{4}[\-/][0-9]{2}[\-/][0-9]{2}",
        r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+\-][0-9]{2}(?::?[0-9]{2})?)?)?",
        r"|[0-9]{2}[./][0-9]{2}[./][0-9]{4}",
        r"|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?",
    ))
});

/// The secret path of a Slack or Discord incoming-webhook URL, after its fixed prefix.
static WEBHOOK_PATH: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(hooks\.slack\.com/(?:services|workflows|triggers)/",
        r"|discord(?:app)?\.com/api/webhooks/)",
        r"([A-Za-z0-9_\-][A-Za-z0-9/_\-]*)",
    ))
});

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction patterns are constant and valid")
}

/// Returns a copy of `value` with secrets and personal data replaced by the `REDACTED*` markers.
pub fn sanitize(value: &Value) -> Value {
    sanitize_at(value, 0)
}

/// Masks secrets and personal data in free text, such as an error message or a log line.
pub fn sanitize_text(text: &str) -> String {
    let text = mask_key_values(text);
    let text = mask_url_passwords(&text);
    let text = mask_auth_credentials(&text);
    let text = mask_webhook_paths(&text);
    let text = replace_matches(&text, &VENDOR_TOKEN, REDACTED_TOKEN, |_, _| true);
    let text = replace_matches(&text, &EMAIL, REDACTED_EMAIL, |_, _| true);
    let text = mask_cards(&text);
    mask_phones(&text)
}

fn sanitize_at(value: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return marker(TOO_DEEP);
    }
    match value {
        Value::Object(map) => Value::Object(sanitize_object(map, depth)),
        Value::Array(items) => Value::Array(sanitize_array(items, depth)),
        Value::String(text) => Value::String(sanitize_text(text)),
        Value::Number(number) => sanitize_number(number),
        Value::Null | Value::Bool(_) => value.clone(),
    }
}

fn sanitize_object(map: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let secret_name = sensitive_name_field(map);
    let mut clean = Map::new();
    for (key, value) in map {
        let named_secret = secret_name.is_some_and(|name| {
            VALUE_FIELDS.contains(&normalize_key(key).as_str()) && hides_value(name, value)
        });
        let clean_value = if named_secret || hides_value(key, value) {
            marker(REDACTED)
        } else {
            sanitize_at(value, depth + 1)
        };
        insert_unique(&mut clean, sanitize_text(key), clean_value);
    }
    clean
}

/// Returns the sensitive header or parameter name of a `{"name": ..., "value": ...}` object.
fn sensitive_name_field(map: &Map<String, Value>) -> Option<&str> {
    map.iter().find_map(|(key, value)| {
        let name = value.as_str()?;
        let is_name_field = NAME_FIELDS.contains(&normalize_key(key).as_str());
        (is_name_field && is_sensitive_key(name)).then_some(name)
    })
}

/// Inserts under `key`, or under `key (2)`, `key (3)`, ... when masking made two keys equal,
/// so that two email-keyed entries do not overwrite each other.
fn insert_unique(map: &mut Map<String, Value>, key: String, value: Value) {
    if !map.contains_key(&key) {
        map.insert(key, value);
        return;
    }
    let mut suffix = 2;
    loop {
        let numbered = format!("{key} ({suffix})");
        if !map.contains_key(&numbered) {
            map.insert(numbered, value);
            return;
        }
        suffix += 1;
    }
}

/// Sanitizes array elements, and also the value after a sensitive flag (`["--token", "abc"]`)
/// and the value of a sensitive header pair (`[["Authorization", "Bearer abc"]]`).
fn sanitize_array(items: &[Value], depth: usize) -> Vec<Value> {
    let mut clean = Vec::with_capacity(items.len());
    let mut pending_flag: Option<&str> = None;
    for item in items {
        let after_flag = pending_flag.take();
        let hidden = after_flag.is_some_and(|flag| {
            let next_is_flag = item.as_str().is_some_and(looks_like_flag);
            !next_is_flag && hides_value(flag, item)
        });
        if hidden {
            clean.push(marker(REDACTED));
            continue;
        }

        let pair_name = sensitive_pair_name(item);
        match pair_name {
            Some(name) if depth < MAX_DEPTH => {
                clean.push(Value::Array(vec![
                    sanitize_at(name, depth + 2),
                    marker(REDACTED),
                ]));
            }
            _ => clean.push(sanitize_at(item, depth + 1)),
        }

        if let Value::String(text) = item {
            pending_flag = flag_name(text).filter(|name| is_secret_flag(name));
        }
    }
    clean
}

/// Returns the name element of a two-element `[name, value]` pair whose value must be hidden.
fn sensitive_pair_name(item: &Value) -> Option<&Value> {
    let Value::Array(pair) = item else {
        return None;
    };
    let [name, value] = pair.as_slice() else {
        return None;
    };
    let text = name.as_str()?;
    hides_value(text, value).then_some(name)
}

/// Returns the name of a command-line flag that may take its value from the next argument, such
/// as `--api-key` or Go's `-token`. Single-dash flags shorter than three letters (`-p`, `-u`) are
/// too ambiguous to trust, and `--token=abc` carries its own value, which text masking handles.
fn flag_name(argument: &str) -> Option<&str> {
    let name = match argument.strip_prefix("--") {
        Some(long) => long,
        None => {
            let short = argument.strip_prefix('-')?;
            if short.chars().count() < 3 {
                return None;
            }
            short
        }
    };
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || name.contains(|c: char| c == '=' || c.is_whitespace()) {
        return None;
    }
    Some(name)
}

/// Tells whether the flag `name` is sensitive and reads its value from the next argument.
/// `--password-stdin` (as in `docker login`) reads the secret from standard input, so the next
/// argument is an ordinary one.
fn is_secret_flag(name: &str) -> bool {
    is_sensitive_key(name) && !normalize_key(name).ends_with("stdin")
}

/// Tells whether an argument is itself a flag (`-v`, `--dry-run`), so it is not a flag's value.
fn looks_like_flag(argument: &str) -> bool {
    let name = argument.trim_start_matches('-');
    name.len() < argument.len() && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// Replaces an integer that is a payment card number, since card numbers are sometimes stored
/// as JSON numbers. Other numbers are copied as they are.
fn sanitize_number(number: &Number) -> Value {
    let is_card = number
        .as_u64()
        .is_some_and(|integer| is_card_number(&integer.to_string()));
    if is_card {
        marker(REDACTED_CARD)
    } else {
        Value::Number(number.clone())
    }
}

fn marker(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// Tells whether the value under `key` must be hidden. Null is kept because it hides nothing and
/// shows that the field was missing. A number, or a string holding one, is kept under a key
/// that ends like a measure (`token_count`, `max_tokens`).
fn hides_value(key: &str, value: &Value) -> bool {
    if value.is_null() || !is_sensitive_key(key) {
        return false;
    }
    let numeric = match value {
        Value::Number(_) => true,
        Value::String(text) => is_numeric_text(text),
        _ => false,
    };
    !(numeric && is_measure_key(&normalize_key(key)))
}

fn is_sensitive_key(key: &str) -> bool {
    // Keys that this module masked contain its markers, and `[redacted token]` must not turn the
    // key into a sensitive one on a second pass.
    let key = without_markers(key);
    let normalized = normalize_key(&key);
    SENSITIVE_KEYS.contains(&normalized.as_str())
        || SENSITIVE_KEY_PARTS
            .iter()
            .any(|part| contains_key_part(&normalized, part))
}

fn without_markers(key: &str) -> Cow<'_, str> {
    let mut key = Cow::Borrowed(key);
    for marker in MARKERS {
        if key.contains(marker) {
            key = Cow::Owned(key.replace(marker, ""));
        }
    }
    key
}

/// Lowercases `key` and drops `-`, `_`, spaces and dots, so that all spellings of a name agree.
fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Tells whether `part` occurs in the normalized key, except inside the ordinary words listed
/// in [`KEY_PART_EXCEPTIONS`].
fn contains_key_part(normalized: &str, part: &str) -> bool {
    normalized.match_indices(part).any(|(at, _)| {
        let rest = &normalized[at + part.len()..];
        let ordinary_word = KEY_PART_EXCEPTIONS
            .iter()
            .any(|(word, endings)| *word == part && endings.iter().any(|e| rest.starts_with(e)));
        !ordinary_word
    })
}

fn is_measure_key(normalized: &str) -> bool {
    MEASURE_SUFFIXES
        .iter()
        .any(|suffix| normalized.ends_with(suffix))
}

fn is_header_key(normalized: &str) -> bool {
    normalized.ends_with("authorization") || normalized.ends_with("cookie")
}

/// Tells whether `text` is a plain decimal number such as `4096`, `-3` or `0.5`.
fn is_numeric_text(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let mut dots = 0;
    let mut digits = 0;
    for byte in unsigned.bytes() {
        match byte {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1 && unsigned.len() <= 20
}

/// Masks the value of each `key=value`, `key: value`, `"key": "value"` and `--flag value` whose
/// key is sensitive.
fn mask_key_values(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut copied = 0;
    let mut position = 0;
    while let Some(word) = KEY_WORD.find_at(text, position) {
        position = word.end();
        if !is_sensitive_key(word.as_str()) {
            continue;
        }
        let Some(value) = value_after_key(text, word) else {
            continue;
        };
        masked.push_str(&text[copied..value.start]);
        masked.push_str(REDACTED);
        copied = value.end;
        position = value.end;
    }
    masked.push_str(&text[copied..]);
    masked
}

/// Returns the byte range of the value that follows the key `word`, if a separator follows it.
fn value_after_key(text: &str, word: Match<'_>) -> Option<Range<usize>> {
    let key = word.as_str();
    let rest = &text[word.end()..];

    // In `https://x-access-token:SECRET@host` the key is the URL's user name, so the URL pass
    // masks the password instead and keeps the host visible.
    if text[..word.start()].ends_with("://") {
        return None;
    }

    // A quote right after the key closes a quoted key, as in JSON.
    let after_quote = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
    let quoted_key = after_quote.len() < rest.len();
    let before_separator = after_quote.trim_start_matches([' ', '\t']);
    let spaced_before = before_separator.len() < after_quote.len();

    let (separator, after_separator) = match before_separator.chars().next() {
        Some(c @ ('=' | ':')) => (c, &before_separator[1..]),
        _ if key.starts_with("--") && !quoted_key && spaced_before && is_secret_flag(key) => {
            (' ', before_separator)
        }
        _ => return None,
    };
    let value = after_separator.trim_start_matches([' ', '\t']);
    let spaced_after = value.len() < after_separator.len();

    let span = value_span(key, separator, spaced_after, value)?;
    let start = text.len() - value.len();
    Some(start + span.start..start + span.end)
}

/// Returns the range of the secret inside `value`, the text after a sensitive key and its
/// separator, or `None` when nothing there needs masking.
fn value_span(key: &str, separator: char, spaced: bool, value: &str) -> Option<Range<usize>> {
    if MARKERS.iter().any(|marker| value.starts_with(marker)) {
        return None;
    }
    let normalized = normalize_key(key);

    let span = if let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        1..1 + quoted_length(&value[1..], quote)
    } else if separator == ':' && is_header_key(&normalized) {
        // `Cookie: a=1; b=2` and `Authorization: Bearer abc` run to the end of the line.
        let line_end = value.find(['\r', '\n', '"', '\'']).unwrap_or(value.len());
        0..value[..line_end].trim_end().len()
    } else {
        let scheme = scheme_length(value);
        let bare = &value[scheme..];
        let end = bare
            .find(|c: char| c.is_whitespace() || BARE_VALUE_ENDS.contains(&c))
            .unwrap_or(bare.len());
        let word = &bare[..end];
        if separator == ' ' && looks_like_flag(word) {
            return None;
        }
        // Error messages read like `token: expired`, where the word after the colon is prose.
        if separator == ':' && spaced && scheme == 0 && is_prose_word(word) {
            return None;
        }
        // `secrets.example.com:8200` is a host and a port, not a key and a value.
        if separator == ':'
            && !spaced
            && key.contains('.')
            && word.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        0..scheme + end
    };

    let secret = &value[span.clone()];
    if secret.is_empty() || (is_measure_key(&normalized) && is_numeric_text(secret)) {
        return None;
    }
    Some(span)
}

/// Returns the length of a quoted string's content up to its closing `quote`, skipping
/// backslash escapes. An unclosed string runs to the end of `text`.
fn quoted_length(text: &str, quote: char) -> usize {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if c == quote => return at,
            _ => {}
        }
    }
    text.len()
}

/// Returns the length of a leading `Bearer ` or `Basic ` (any scheme in [`AUTH_SCHEMES`]) that
/// is followed by a credential, or 0.
fn scheme_length(value: &str) -> usize {
    for scheme in AUTH_SCHEMES {
        let Some(head) = value.get(..scheme.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(scheme) {
            continue;
        }
        let after = &value[scheme.len()..];
        let credential = after.trim_start_matches([' ', '\t']);
        let has_credential = credential
            .chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && !BARE_VALUE_ENDS.contains(&c));
        if credential.len() < after.len() && has_credential {
            return value.len() - credential.len();
        }
    }
    0
}

/// Tells whether a word reads as prose: only lowercase ASCII letters and shorter than 16.
/// Generated secrets rarely look like that, but a lowercase password after `password: ` stays
/// visible.
fn is_prose_word(word: &str) -> bool {
    let word = word.trim_end_matches(['.', '!', '?']);
    !word.is_empty() && word.len() < 16 && word.bytes().all(|b| b.is_ascii_lowercase())
}

fn mask_url_passwords(text: &str) -> String {
    URL_PASSWORD
        .replace_all(text, |caps: &Captures<'_>| {
            format!("{}:{REDACTED}@", &caps[1])
        })
        .into_owned()
}

/// Masks the secret path of Slack and Discord webhook URLs, such as the alert webhook's, because
/// anyone who has the URL can post to the channel.
fn mask_webhook_paths(text: &str) -> String {
    WEBHOOK_PATH
        .replace_all(text, |caps: &Captures<'_>| {
            format!("{}{REDACTED_TOKEN}", &caps[1])
        })
        .into_owned()
}

/// Masks `Bearer` and `Basic` credentials in running text, keeping the scheme word.
fn mask_auth_credentials(text: &str) -> String {
    AUTH_CREDENTIAL
        .replace_all(text, |caps: &Captures<'_>| {
            if looks_like_credential(&caps[3]) {
                format!("{}{}{REDACTED_TOKEN}", &caps[1], &caps[2])
            } else {
                caps[0].to_owned()
            }
        })
        .into_owned()
}

/// Tells whether the word after `Bearer` or `Basic` is a credential and not prose such as
/// "Basic authentication". It must have 16 characters or more, or 8 or more with a digit, a
/// symbol or an uppercase letter after the first. Shorter credentials are left visible.
fn looks_like_credential(word: &str) -> bool {
    let mixed = word.chars().enumerate().any(|(at, c)| {
        c.is_ascii_digit() || !c.is_ascii_alphanumeric() || (at > 0 && c.is_ascii_uppercase())
    });
    word.len() >= 16 || (word.len() >= 8 && mixed)
}

fn mask_cards(text: &str) -> String {
    let excluded = excluded_spans(text);
    replace_matches(text, &CARD_CANDIDATE, REDACTED_CARD, |text, found| {
        is_delimited(text, found.range())
            && !overlaps(&excluded, found.range())
            && is_card_number(found.as_str())
    })
}

fn mask_phones(text: &str) -> String {
    let excluded = excluded_spans(text);
    replace_matches(text, &PHONE_CANDIDATE, REDACTED_PHONE, |text, found| {
        is_delimited(text, found.range())
            && !overlaps(&excluded, found.range())
            && is_phone_number(found.as_str())
    })
}

fn excluded_spans(text: &str) -> Vec<Range<usize>> {
    NOT_A_NUMBER
        .find_iter(text)
        .map(|found| found.range())
        .collect()
}

fn overlaps(spans: &[Range<usize>], range: Range<usize>) -> bool {
    spans
        .iter()
        .any(|span| span.start < range.end && range.start < span.end)
}

/// Replaces each match of `pattern` that `accept` approves with `replacement`.
fn replace_matches(
    text: &str,
    pattern: &Regex,
    replacement: &str,
    accept: impl Fn(&str, Match<'_>) -> bool,
) -> String {
    let mut replaced = String::with_capacity(text.len());
    let mut copied = 0;
    for found in pattern.find_iter(text) {
        if !accept(text, found) {
            continue;
        }
        replaced.push_str(&text[copied..found.start()]);
        replaced.push_str(replacement);
        copied = found.end();
    }
    replaced.push_str(&text[copied..]);
    replaced
}

/// Tells whether a digit run is delimited, that is not part of an identifier, a path segment,
/// an `#order` number or a longer dotted or dashed code such as `ID-555-123-4567`.
fn is_delimited(text: &str, range: Range<usize>) -> bool {
    let previous = text[..range.start].chars().next_back();
    let joins_previous = previous.is_some_and(|c| {
        c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+' | '#' | '@' | '$')
    });

    let mut after = text[range.end..].chars();
    let next = after.next();
    let next_but_one = after.next();
    let joins_next = next.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '@'))
        || (matches!(next, Some('-' | '.' | '/'))
            && next_but_one.is_some_and(char::is_alphanumeric));

    !joins_previous && !joins_next
}

/// Tells whether a digit run is a payment card number. It must have 13 to 19 digits and start
/// with 2 to 6, the banking industries, which leaves out millisecond timestamps and airline
/// numbers. It must be grouped like a card (one block, blocks of four, or the 4-6-5 and 4-6-4 of
/// Amex and Diners) and pass the Luhn check.
fn is_card_number(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || !(2..=6).contains(&digits[0]) {
        return false;
    }

    let groups: Vec<usize> = candidate.split([' ', '-']).map(str::len).collect();
    let (last, leading) = groups.split_last().unwrap_or((&0, &[]));
    let grouped_like_card = groups.len() == 1
        || matches!(groups.as_slice(), [4, 6, 5] | [4, 6, 4])
        || (leading.iter().all(|&group| group == 4) && (1..=4).contains(last));

    grouped_like_card && passes_luhn(&digits)
}

fn passes_luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(at, &digit)| {
            if at % 2 == 0 {
                digit
            } else if digit * 2 > 9 {
                digit * 2 - 9
            } else {
                digit * 2
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Tells whether a candidate from [`PHONE_CANDIDATE`] has the digits of a phone number: 8 to 15
/// with a leading `+` (E.164 allows at most 15), otherwise 10 to 15. Groups split only by dots
/// count only in the `555.123.4567` shape, so version numbers and IP addresses stay.
///
/// NOTE: national numbers written in two groups, such as the UK's `07700 900123`, are not
/// recognized, and any three or more space-separated groups with 10 to 15 digits in all are
/// masked, even a list of sizes such as `100 200 300 400`.
fn is_phone_number(candidate: &str) -> bool {
    let groups: Vec<usize> = candidate
        .split(|c: char| !c.is_ascii_digit())
        .filter(|group| !group.is_empty())
        .map(str::len)
        .collect();
    let digit_count: usize = groups.iter().sum();
    if candidate.starts_with('+') {
        return (8..=15).contains(&digit_count);
    }
    if !(10..=15).contains(&digit_count) {
        return false;
    }
    let dots_only = !candidate.contains([' ', '-', '(', ')']);
    !dots_only || groups == [3, 3, 4]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One sanitizer case: a short name shown on failure, the input and the expected output.
    struct Case {
        name: &'static str,
        input: Value,
        expected: Value,
    }

    fn case(name: &'static str, input: Value, expected: Value) -> Case {
        Case {
            name,
            input,
            expected,
        }
    }

    const JWT: &str =
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    const PRODUCT_TOKEN: &str = "slt_q3Jx9vT2bW8kLmN4pR7sU1yZ0aC5dE6fG_h-iJkLmNo";

    fn value_cases() -> Vec<Case> {
        vec![
            case(
                "plain values unchanged",
                json!({"id": 42, "ok": true, "none": null, "ratio": 0.5,
                       "title": "Weekly report", "tags": ["a", "b"]}),
                json!({"id": 42, "ok": true, "none": null, "ratio": 0.5,
                       "title": "Weekly report", "tags": ["a", "b"]}),
            ),
            case(
                "password string",
                json!({"password": "hunter2", "user": "ann"}),
                json!({"password": REDACTED, "user": "ann"}),
            ),
            case("pin number", json!({"pin": 1234}), json!({"pin": REDACTED})),
            case(
                "object under secret key",
                json!({"credentials": {"user": "ann", "pass": "x"}}),
                json!({"credentials": REDACTED}),
            ),
            case(
                "array under secret key",
                json!({"tokens": ["abc", "def"]}),
                json!({"tokens": REDACTED}),
            ),
            case(
                "boolean under secret key",
                json!({"db_password": false}),
                json!({"db_password": REDACTED}),
            ),
            case(
                "null under secret key",
                json!({"password": null}),
                json!({"password": null}),
            ),
            case(
                "counts under token keys",
                json!({"token_count": 1200, "max_tokens": 4096, "input_tokens": 12,
                       "password_length": 12, "session_count": 3, "max_tokens_text": "256"}),
                json!({"token_count": 1200, "max_tokens": 4096, "input_tokens": 12,
                       "password_length": 12, "session_count": 3, "max_tokens_text": REDACTED}),
            ),
            case(
                "count key with token text",
                json!({"token_count": "ghp_notacount"}),
                json!({"token_count": REDACTED}),
            ),
            case(
                "numeric string count",
                json!({"max_tokens": "4096"}),
                json!({"max_tokens": "4096"}),
            ),
            case(
                "nested objects",
                json!({"job": {"db": {"url": "postgres://app:s3cret@db:5432/siteline",
                                      "password": "x"}, "retries": 3}}),
                json!({"job": {"db": {"url": format!("postgres://app:{REDACTED}@db:5432/siteline"),
                                      "password": REDACTED}, "retries": 3}}),
            ),
            case(
                "arrays of objects",
                json!({"users": [{"email": "ann@example.com", "role": "admin"},
                                 {"email": "bob@example.org", "role": "viewer"}]}),
                json!({"users": [{"email": REDACTED_EMAIL, "role": "admin"},
                                 {"email": REDACTED_EMAIL, "role": "viewer"}]}),
            ),
            case(
                "args sensitive flags",
                json!({"args": ["deploy", "--password", "hunter2", "--token=abc123",
                                "--api-key", "k1", "--verbose"]}),
                json!({"args": ["deploy", "--password", REDACTED, format!("--token={REDACTED}"),
                                "--api-key", REDACTED, "--verbose"]}),
            ),
            case(
                "args short flag kept",
                json!(["mysql", "-p", "hunter2", "-u", "root"]),
                json!(["mysql", "-p", "hunter2", "-u", "root"]),
            ),
            case(
                "args flag before flag",
                json!(["--token", "--dry-run", "site"]),
                json!(["--token", "--dry-run", "site"]),
            ),
            case(
                "args single dash long flag",
                json!(["-token", "abc", "-secret=xyz"]),
                json!(["-token", REDACTED, format!("-secret={REDACTED}")]),
            ),
            case(
                "args count flag kept",
                json!(["--max-tokens", "100", "--client-secret", "99"]),
                json!(["--max-tokens", "100", "--client-secret", REDACTED]),
            ),
            case(
                "args password stdin",
                json!(["login", "--password-stdin", "registry.example.com"]),
                json!(["login", "--password-stdin", "registry.example.com"]),
            ),
            case(
                "args flag at end",
                json!(["run", "--password"]),
                json!(["run", "--password"]),
            ),
            case(
                "headers object form",
                json!({"headers": {"Authorization": "Bearer abc", "Accept": "text/html",
                                   "X-Api-Key": "k", "Cookie": "sid=1",
                                   "Proxy-Authorization": "Basic eA=="}}),
                json!({"headers": {"Authorization": REDACTED, "Accept": "text/html",
                                   "X-Api-Key": REDACTED, "Cookie": REDACTED,
                                   "Proxy-Authorization": REDACTED}}),
            ),
            case(
                "headers pairs form",
                json!({"headers": [["Authorization", "Bearer x"], ["Accept", "text/html"],
                                   ["set-cookie", "sid=1"]]}),
                json!({"headers": [["Authorization", REDACTED], ["Accept", "text/html"],
                                   ["set-cookie", REDACTED]]}),
            ),
            case(
                "headers name value form",
                json!({"headers": [{"name": "Set-Cookie", "value": "sid=abc"},
                                   {"name": "Accept", "value": "*/*"}]}),
                json!({"headers": [{"name": "Set-Cookie", "value": REDACTED},
                                   {"name": "Accept", "value": "*/*"}]}),
            ),
            case(
                "key value objects",
                json!([{"key": "DB_PASSWORD", "value": "x"}, {"key": "PORT", "value": "5432"}]),
                json!([{"key": "DB_PASSWORD", "value": REDACTED}, {"key": "PORT", "value": "5432"}]),
            ),
            case(
                "field name list kept",
                json!({"fields": ["password", "email"], "form": [["password", "token", "name"]]}),
                json!({"fields": ["password", "email"], "form": [["password", "token", "name"]]}),
            ),
            case(
                "env var list",
                json!(["PATH=/usr/bin", "DB_PASSWORD=hunter2", "GITHUB_TOKEN=x1"]),
                json!([
                    "PATH=/usr/bin",
                    format!("DB_PASSWORD={REDACTED}"),
                    format!("GITHUB_TOKEN={REDACTED}")
                ]),
            ),
            case(
                "email in harmless key",
                json!({"note": "contact ann@example.com today"}),
                json!({"note": format!("contact {REDACTED_EMAIL} today")}),
            ),
            case(
                "email as object key",
                json!({"ann@example.com": {"visits": 3}}),
                json!({REDACTED_EMAIL: {"visits": 3}}),
            ),
            case(
                "colliding masked keys",
                json!({"ann@example.com": 1, "bob@example.com": 2}),
                json!({REDACTED_EMAIL: 1, format!("{REDACTED_EMAIL} (2)"): 2}),
            ),
            case(
                "phone international",
                json!({"contact": "+44 20 7946 0958", "us": "+1 (555) 123-4567"}),
                json!({"contact": REDACTED_PHONE, "us": REDACTED_PHONE}),
            ),
            case(
                "phone national formats",
                json!([
                    "(555) 123-4567",
                    "555-123-4567",
                    "555.123.4567",
                    "call 555 123 4567 now",
                    "020 7946 0958"
                ]),
                json!([
                    REDACTED_PHONE,
                    REDACTED_PHONE,
                    REDACTED_PHONE,
                    format!("call {REDACTED_PHONE} now"),
                    REDACTED_PHONE
                ]),
            ),
            case(
                "not phone numbers",
                json!([
                    "2024-01-15",
                    "2024-01-15T10:30:00Z",
                    "2024-01-15 10:30:00+02:00",
                    "2024-01-15 12 34",
                    "550e8400-e29b-41d4-a716-446655440000",
                    "11111111-2222-3333-4444-555555555555",
                    "42",
                    "1.2.3",
                    "v10.11.12",
                    "3.14159265358979",
                    "1700000000000",
                    "192.168.100.200",
                    "5551234567",
                    "10.0.19045.3803",
                    "ID-555-123-4567",
                    "#555-123-4567",
                    "/orders/555-123-4567/items",
                    "12 34 56"
                ]),
                json!([
                    "2024-01-15",
                    "2024-01-15T10:30:00Z",
                    "2024-01-15 10:30:00+02:00",
                    "2024-01-15 12 34",
                    "550e8400-e29b-41d4-a716-446655440000",
                    "11111111-2222-3333-4444-555555555555",
                    "42",
                    "1.2.3",
                    "v10.11.12",
                    "3.14159265358979",
                    "1700000000000",
                    "192.168.100.200",
                    "5551234567",
                    "10.0.19045.3803",
                    "ID-555-123-4567",
                    "#555-123-4567",
                    "/orders/555-123-4567/items",
                    "12 34 56"
                ]),
            ),
            case(
                "luhn card numbers",
                json!([
                    "4111 1111 1111 1111",
                    "5555-5555-5555-4444",
                    "378282246310005",
                    "3782 822463 10005",
                    "pay 4111111111111111 now",
                    "6011111111111117"
                ]),
                json!([
                    REDACTED_CARD,
                    REDACTED_CARD,
                    REDACTED_CARD,
                    REDACTED_CARD,
                    format!("pay {REDACTED_CARD} now"),
                    REDACTED_CARD
                ]),
            ),
            case(
                "not card numbers",
                json!([
                    "4111 1111 1111 1112",
                    "1234-5678-9012-3456",
                    "0000000000000000",
                    "1700000000004",
                    "41 1111 1111 1111 11"
                ]),
                json!([
                    "4111 1111 1111 1112",
                    "1234-5678-9012-3456",
                    "0000000000000000",
                    "1700000000004",
                    "41 1111 1111 1111 11"
                ]),
            ),
            case(
                "card as json number",
                json!({"n": 4111111111111111_u64, "id": 4111111111111112_u64,
                       "ts": 1700000000004_u64}),
                json!({"n": REDACTED_CARD, "id": 4111111111111112_u64, "ts": 1700000000004_u64}),
            ),
            case(
                "jwt in value",
                json!({"note": JWT}),
                json!({"note": REDACTED_TOKEN}),
            ),
            case(
                "vendor token prefixes",
                json!([
                    "sk-proj-abcdefghijklmnop1234",
                    PRODUCT_TOKEN,
                    "ghp_1234567890abcdefghijABCDEFGHIJ123456",
                    "xoxb-1234-5678-abcdefghij",
                    "AKIAIOSFODNN7EXAMPLE",
                    "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
                ]),
                json!([
                    REDACTED_TOKEN,
                    REDACTED_TOKEN,
                    REDACTED_TOKEN,
                    REDACTED_TOKEN,
                    REDACTED_TOKEN,
                    REDACTED_TOKEN
                ]),
            ),
            case(
                "token words as values",
                json!({"kind": "tokenizer", "note": "token refresh scheduled",
                       "model": "gpt-tokenizer", "tokenizer": "cl100k_base",
                       "task": "sk-learn", "step": "tokenization"}),
                json!({"kind": "tokenizer", "note": "token refresh scheduled",
                       "model": "gpt-tokenizer", "tokenizer": "cl100k_base",
                       "task": "sk-learn", "step": "tokenization"}),
            ),
            case(
                "query string key",
                json!({"url": "https://api.example.com/v1?api_key=abc123&x=1"}),
                json!({"url": format!("https://api.example.com/v1?api_key={REDACTED}&x=1")}),
            ),
            case(
                "connection string",
                json!({"dsn": "postgres://user:pass@host/db"}),
                json!({"dsn": format!("postgres://user:{REDACTED}@host/db")}),
            ),
            case(
                "mixed scalar array",
                json!([1, "two", null, true, 2.5, -7]),
                json!([1, "two", null, true, 2.5, -7]),
            ),
            case(
                "empty containers",
                json!({"a": [], "b": {}, "c": ""}),
                json!({"a": [], "b": {}, "c": ""}),
            ),
            case(
                "harmless lookalike keys",
                json!({"pinned": true, "otp_enabled": true, "author": "ann", "keyboard": "us",
                       "session_count": 2, "monkey": 1, "spin": 3}),
                json!({"pinned": true, "otp_enabled": true, "author": "ann", "keyboard": "us",
                       "session_count": 2, "monkey": 1, "spin": 3}),
            ),
            case(
                "top-level string",
                json!("ann@example.com"),
                json!(REDACTED_EMAIL),
            ),
            case("top-level number", json!(7), json!(7)),
        ]
    }

    fn text_cases() -> Vec<(&'static str, &'static str, String)> {
        let same = |text: &str| text.to_owned();
        vec![
            (
                "key equals value",
                "password=hunter2 retry",
                format!("password={REDACTED} retry"),
            ),
            (
                "key spaced equals",
                "password = 'hunter2'",
                format!("password = '{REDACTED}'"),
            ),
            (
                "email in message",
                "login failed for ann@example.com",
                format!("login failed for {REDACTED_EMAIL}"),
            ),
            (
                "authorization header line",
                "sent Authorization: Bearer abc123def456\nnext",
                format!("sent Authorization: {REDACTED}\nnext"),
            ),
            (
                "bearer in prose",
                "got Bearer abcdefgh12345678 from cache",
                format!("got Bearer {REDACTED_TOKEN} from cache"),
            ),
            (
                "bearer product token",
                "Bearer slt_q3Jx9vT2bW8kLmN4pR7sU1yZ0aC5dE6fG_h-iJkLmNo",
                format!("Bearer {REDACTED_TOKEN}"),
            ),
            (
                "product token alone",
                "leaked slt_q3Jx9vT2bW8kLmN4pR7sU1yZ0aC5dE6fG_h-iJkLmNo here",
                format!("leaked {REDACTED_TOKEN} here"),
            ),
            ("short bearer kept", "Bearer x", same("Bearer x")),
            (
                "basic credential",
                "Basic dXNlcjpwYXNz",
                format!("Basic {REDACTED_TOKEN}"),
            ),
            (
                "basic in prose",
                "Basic authentication failed",
                same("Basic authentication failed"),
            ),
            (
                "bearer in prose kept",
                "the bearer of bad news",
                same("the bearer of bad news"),
            ),
            (
                "json in text",
                r#"{"password":"x","user":"bob"}"#,
                format!(r#"{{"password":"{REDACTED}","user":"bob"}}"#),
            ),
            (
                "json escaped quote",
                r#"{"secret": "a\"b", "n": 1}"#,
                format!(r#"{{"secret": "{REDACTED}", "n": 1}}"#),
            ),
            (
                "token colon prose",
                "Failed to refresh token: connection timed out",
                same("Failed to refresh token: connection timed out"),
            ),
            (
                "token colon secret",
                "token: Xy7abc9",
                format!("token: {REDACTED}"),
            ),
            (
                "secret without space",
                "secret:abc",
                format!("secret:{REDACTED}"),
            ),
            (
                "api key header quoted",
                "curl -H 'X-Api-Key: k123' https://x.test",
                format!("curl -H 'X-Api-Key: {REDACTED}' https://x.test"),
            ),
            (
                "cookie header line",
                "Cookie: a=1; session=2",
                format!("Cookie: {REDACTED}"),
            ),
            (
                "flag with space",
                "mysql --password hunter2 --host db",
                format!("mysql --password {REDACTED} --host db"),
            ),
            (
                "flag with equals",
                "--token=abc",
                format!("--token={REDACTED}"),
            ),
            (
                "redis password only",
                "redis://:hunter2@cache:6379/0",
                format!("redis://:{REDACTED}@cache:6379/0"),
            ),
            (
                "host with port",
                "dial secrets.example.com:8200 failed",
                same("dial secrets.example.com:8200 failed"),
            ),
            (
                "card with dashes",
                "card 4111-1111-1111-1111 declined",
                format!("card {REDACTED_CARD} declined"),
            ),
            (
                "non luhn order id",
                "order 1234-5678-9012-3456 shipped",
                same("order 1234-5678-9012-3456 shipped"),
            ),
            (
                "phone sentence end",
                "call +1 (555) 123-4567.",
                format!("call {REDACTED_PHONE}."),
            ),
            (
                "timestamp and duration",
                "build 2024-01-15 12:30:45 took 1234567 ms",
                same("build 2024-01-15 12:30:45 took 1234567 ms"),
            ),
            (
                "uuid in message",
                "request 550e8400-e29b-41d4-a716-446655440000 failed",
                same("request 550e8400-e29b-41d4-a716-446655440000 failed"),
            ),
            (
                "decimals and counts",
                "timeout after 30.5 seconds (attempt 3 of 10)",
                same("timeout after 30.5 seconds (attempt 3 of 10)"),
            ),
            (
                "version string",
                "version 1.22.333 released",
                same("version 1.22.333 released"),
            ),
            (
                "aws key id",
                "aws key AKIAIOSFODNN7EXAMPLE leaked",
                format!("aws key {REDACTED_TOKEN} leaked"),
            ),
            (
                "jwt in message",
                "jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig rejected",
                format!("jwt={REDACTED_TOKEN} rejected"),
            ),
            (
                "tokenizer word",
                "tokenizer failed on input",
                same("tokenizer failed on input"),
            ),
            (
                "measure key numeric",
                "max_tokens=4096 token_count: 12",
                same("max_tokens=4096 token_count: 12"),
            ),
            (
                "unicode around secret",
                "ü password=ü€x done",
                format!("ü password={REDACTED} done"),
            ),
            ("empty text", "", String::new()),
            (
                "url user named token",
                "git clone https://x-access-token:ghs_16C7e42F292c6912E7710c838347Ae178B4a@github.com/o/r.git",
                format!("git clone https://x-access-token:{REDACTED}@github.com/o/r.git"),
            ),
            (
                "password stdin flag",
                "docker login --password-stdin registry.example.com",
                same("docker login --password-stdin registry.example.com"),
            ),
            (
                "encoded email in query",
                "GET /v1/users?email=ann%40example.com&page=2",
                format!("GET /v1/users?email={REDACTED_EMAIL}&page=2"),
            ),
            (
                "slack webhook url",
                "POST https://hooks.slack.com/services/T000/B000/XXXXsecret failed",
                format!("POST https://hooks.slack.com/services/{REDACTED_TOKEN} failed"),
            ),
            (
                "discord webhook url",
                "https://discord.com/api/webhooks/123456789/abcDEF-ghi",
                format!("https://discord.com/api/webhooks/{REDACTED_TOKEN}"),
            ),
            (
                "phone with trunk prefix",
                "call 1-800-555-0199 today",
                format!("call {REDACTED_PHONE} today"),
            ),
            (
                "secretary is a title",
                "secretary: Jane",
                same("secretary: Jane"),
            ),
            (
                "url with fragment token",
                "https://x.test/cb#access_token=abc&state=9",
                format!("https://x.test/cb#access_token={REDACTED}&state=9"),
            ),
        ]
    }

    #[test]
    fn sanitize_value_table() {
        let mut failures = Vec::new();
        for case in value_cases() {
            let actual = sanitize(&case.input);
            if actual != case.expected {
                failures.push(format!(
                    "{}: expected {}, got {}",
                    case.name, case.expected, actual
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn sanitize_text_table() {
        let mut failures = Vec::new();
        for (name, input, expected) in text_cases() {
            let actual = sanitize_text(input);
            if actual != expected {
                failures.push(format!("{name}: expected {expected:?}, got {actual:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn sensitive_key_spellings() {
        let keys = [
            "password",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "client_secret",
            "token",
            "access_token",
            "refresh_token",
            "id_token",
            "api_key",
            "apikey",
            "apiKey",
            "API KEY",
            "X-Api-Key",
            "x-api-key",
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "Set-Cookie",
            "session",
            "session_id",
            "sessionId",
            "private_key",
            "credentials",
            "signature",
            "hmac",
            "otp",
            "pin",
            "cvv",
            "cvc",
            "card_number",
            "ssn",
            "auth",
            "db_password",
            "githubToken",
            "slack_webhook_secret",
            "DB.PASSWORD",
            "X-CSRF-Token",
            "aws_secret_access_key",
            "creditCardNumber",
            "tokens",
        ];
        let mut failures = Vec::new();
        for key in keys {
            let actual = sanitize(&json!({ key: "value-1" }));
            if actual[key] != json!(REDACTED) {
                failures.push(format!("{key}: got {actual}"));
            }
        }
        assert!(
            failures.is_empty(),
            "not redacted:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn sanitize_twice_equals_once() {
        let mut failures = Vec::new();
        for case in value_cases() {
            let once = sanitize(&case.input);
            let twice = sanitize(&once);
            if once != twice {
                failures.push(format!("{}: {once} became {twice}", case.name));
            }
        }
        for (name, input, _) in text_cases() {
            let once = sanitize_text(input);
            let twice = sanitize_text(&once);
            if once != twice {
                failures.push(format!("{name}: {once:?} became {twice:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn deep_arrays_are_cut() {
        let mut nested = json!("ann@example.com");
        for _ in 0..200 {
            nested = json!([nested]);
        }

        let clean = sanitize(&nested);

        let mut inner = &clean;
        for _ in 0..MAX_DEPTH {
            assert_eq!(inner.as_array().map(Vec::len), Some(1), "array at depth");
            inner = &inner[0];
        }
        assert_eq!(inner[0], json!(TOO_DEEP));
        assert_eq!(sanitize(&clean), clean);
    }

    #[test]
    fn deep_objects_are_cut() {
        let mut nested = json!({"password": "x"});
        for _ in 0..200 {
            nested = json!({"child": nested, "password": "y"});
        }

        let clean = sanitize(&nested);

        assert_eq!(clean["password"], json!(REDACTED));
        let mut inner = &clean;
        for _ in 0..MAX_DEPTH {
            inner = &inner["child"];
        }
        assert_eq!(inner["child"], json!(TOO_DEEP));
        assert_eq!(sanitize(&clean), clean);
    }

    #[test]
    fn deep_header_pairs_are_cut() {
        let mut nested = json!([["Authorization", "Bearer x"]]);
        for _ in 0..200 {
            nested = json!([nested]);
        }

        let clean = sanitize(&nested);

        assert_eq!(sanitize(&clean), clean);
    }

    #[test]
    fn odd_text_does_not_panic() {
        let inputs = [
            "",
            "+",
            "@",
            "(",
            ")",
            "-",
            "--",
            "--password",
            "password=",
            "password=\"",
            "password:'",
            "Bearer",
            "Bearer ",
            "eyJ.",
            "a@b",
            "+\u{661}\u{662}",
            "€=€",
            "\u{664}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}",
            "token\u{0}: x",
            "🔑 secret=🔒",
            "Authorization:",
            "Cookie: \r\n",
            "x://:@",
            "password=[redacted]abc",
            "[redacted email]",
            "ü\u{301}-555-123-4567-ü",
        ];
        for input in inputs {
            let once = sanitize_text(input);
            assert_eq!(sanitize_text(&once), once, "not stable for {input:?}");
        }
    }
}
