//! Site profile facts: code, name, city, kind, people, security level, and the user's wishes
//! (GPS, checkpoints, shifts, maintenance, a proposal).

use std::sync::LazyLock;

use regex::Regex;

use super::{CollectedData, SecurityLevel, SiteKind};
use crate::conversations::parse_site_code;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("fact patterns are valid")
}

/// "a.m." and "p.m." with dots.
pub(super) static MERIDIEM_DOTS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b([ap])\.\s?m\b\.?"));

/// A time written with a dot, such as "8.30".
pub(super) static DOTTED_TIME: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(\d{1,2})\.(\d{2})\b"));

/// Runs of spaces and tabs.
pub(super) static SPACES: LazyLock<Regex> = LazyLock::new(|| regex(r"[ \t]+"));

/// The end of a sentence.
pub(super) static SENTENCE_END: LazyLock<Regex> = LazyLock::new(|| regex(r"[.;!?]+(?:\s+|$)|\n+"));

static SITE_CODE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(postal |zip |pin |dress |area |promo )?code\s*(?:is|:|=|-)?\s*([a-z0-9][a-z0-9_-]{0,40})",
    )
});

static SITE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?:[Cc]alled|[Nn]amed|site name is|site name:?)\s+(?:"([^"]{2,80})"|([A-Z][\w'&-]*(?:\s+[A-Z0-9][\w'&-]*){0,5}))"#,
    )
});

/// "in Nagpur" or "our Bangalore office": a capitalized word, checked against a stop list.
static CITY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(?:in|[Oo]ur)\s+([A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})?)\b"));

static BUILDING: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b((?:Tower|Building|Block|Wing|Phase|Unit)\s+[A-Z0-9]{1,4})\b"));

static TIMEZONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\b((?:Africa|America|Asia|Atlantic|Australia|Europe|Indian|Pacific)/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?|UTC)\b",
    )
});

/// Site kind phrases, most specific first. Place names such as "warehouse floor", "office
/// floors", "shop floor" and "store room" are excluded, and "store" counts only after a word
/// that makes it a noun, so "we store electronics" names no kind.
static SITE_KINDS: LazyLock<Vec<(Regex, SiteKind)>> = LazyLock::new(|| {
    [
        (r"\bbank branch|\bbranch of (?:the|our) bank|\bbank\b", SiteKind::BankBranch),
        (r"\batm (?:site|kiosk|booth|location|lobby)\b", SiteKind::Atm),
        (r"\bhospital|\bclinic\b|\bmedical cent(?:er|re)", SiteKind::Hospital),
        (r"\bmixed[- ]use\b", SiteKind::MixedUse),
        (r"\bmanufacturing|\bfactory\b|\bproduction plant\b", SiteKind::Manufacturing),
        (r"\bindustrial\b", SiteKind::Industrial),
        (
            r"\bwarehouse\b(?:\s+(?:floor|area|aisles?)\b)?|\bdistribution cent(?:er|re)|\bfulfil?lment cent(?:er|re)|\blogistics (?:hub|park)",
            SiteKind::Warehouse,
        ),
        (
            r"\boffices?\b(?:\s+(?:floors?|area|spaces?|rooms?)\b)?|\bheadquarters\b|\bhq\b|\bcorporate campus",
            SiteKind::Office,
        ),
        (
            r"\bretail\b|\bshowroom\b|\bsupermarket\b|\bmall\b|\boutlet\b|\b(?:a|the|our|new|grocery|department|convenience) (?:store|shop)\b(?:\s+(?:room|floor)\b)?",
            SiteKind::Retail,
        ),
    ]
    .into_iter()
    .map(|(pattern, kind)| (regex(&format!("(?i){pattern}")), kind))
    .collect()
});

static PEOPLE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(\d{1,3}(?:,\d{3})+|\d+|[a-z]+(?:[ -][a-z]+)?)\s*\+?\s*(?:full[- ]time\s+|permanent\s+)?(?:staff|employees|people|workers|users|persons|personnel|occupants|team members|members of staff)\b",
    )
});

static HEADCOUNT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\bheadcount\s*(?:of|is|:)?\s*(?:about|around|roughly)?\s*(\d+)"));

/// Level words: basic, enhanced or high, with their common synonyms.
const LEVEL_WORDS: &str =
    "basic|standard|normal|low|minimal|enhanced|elevated|medium|moderate|heightened|high|maximum|max|strict|tight|top";

static LEVEL_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b({LEVEL_WORDS})(?:[- ]level)?\s+security\b"
    ))
});

static LEVEL_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\bsecurity\b[^.;,]{{0,30}}?\b({LEVEL_WORDS})\b"
    ))
});

static GPS: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\bgps\b"));

static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:no|not|without|don't|dont|do not|doesn't|does not|never|disable|disabled|off)\b",
    )
});

static PROPOSAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bwhat (?:do|would|can) you (?:recommend|suggest|propose)|\bpropose\b|\bmake (?:a|the|your) (?:proposal|recommendation)|\b(?:ready for|give me|show me|send me|let's see) (?:a |the |your )?(?:proposal|recommendations?|setup)|\bgo ahead\b|\brecommend (?:a|the) (?:setup|configuration)",
    )
});

static MAINTENANCE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\bmaintenance\b|\bservicing\b|\bpreventive\b|\binspection schedules?\b")
});

static CHECKPOINTS_DECLINED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bno (?:guard )?(?:checkpoints|patrols|guard tours|tours)\b|\b(?:checkpoints|patrols|guard tours) (?:are|is)? ?not (?:needed|required|necessary)",
    )
});

static SHIFTS_DECLINED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bno (?:guards|shifts|guard shifts|security staff)\b|\b(?:guards|shifts) (?:are|is)? ?not (?:needed|required|necessary)",
    )
});

static REFUSAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^\s*(?:no|nope|none|nothing|not needed|not really|no need|n/?a|skip(?: it| this| that)?|none needed|not applicable|no thanks?)\b[\s.!,]*(?:thanks?|thank you)?[\s.!]*$",
    )
});

/// Words that start with a capital letter but name no city.
const NOT_CITIES: [&str; 24] = [
    "The",
    "Our",
    "This",
    "That",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Tower",
    "Building",
];

/// Reads the site code, name, city, building, kind and time zone.
pub(super) fn read_site(sentence: &str, found: &mut CollectedData) {
    for captures in SITE_CODE.captures_iter(sentence) {
        if captures.get(1).is_some() {
            continue;
        }
        let raw = &captures[2];
        // A code has a digit or a dash, or was typed in capitals, so "code is fine" is no code.
        let looks_like_code = raw.contains(|c: char| c.is_ascii_digit() || c == '-')
            || raw.chars().all(|c| !c.is_ascii_lowercase());
        if looks_like_code {
            if let Ok(code) = parse_site_code(raw.trim_end_matches(['-', '_'])) {
                found.site_code = Some(code);
                break;
            }
        }
    }

    if let Some(captures) = SITE_NAME.captures(sentence) {
        let name = captures.get(1).or_else(|| captures.get(2));
        found.site_name = name.map(|name| name.as_str().trim().to_string());
    }
    for captures in CITY.captures_iter(sentence) {
        let city = &captures[1];
        let first = city.split(' ').next().unwrap_or(city);
        if !NOT_CITIES.contains(&first) {
            found.city = Some(city.to_string());
            break;
        }
    }
    if let Some(captures) = BUILDING.captures(sentence) {
        found.building = Some(captures[1].to_string());
    }
    if let Some(captures) = TIMEZONE.captures(sentence) {
        found.timezone = Some(captures[1].to_string());
    }
    if let Some(kind) = site_kind(sentence) {
        found.site_kind = Some(kind);
    }
}

/// Returns the site kind named earliest in the sentence.
fn site_kind(sentence: &str) -> Option<SiteKind> {
    SITE_KINDS
        .iter()
        .filter_map(|(pattern, kind)| {
            pattern
                .find_iter(sentence)
                .find(|found| !is_place_name(found.as_str()))
                .map(|found| (found.start(), *kind))
        })
        .min_by_key(|(start, _)| *start)
        .map(|(_, kind)| kind)
}

/// Returns whether a site-kind match names a place within a site, such as "office floors".
fn is_place_name(matched: &str) -> bool {
    let last = matched.rsplit(' ').next().unwrap_or("").to_lowercase();
    matched.contains(' ')
        && [
            "floor", "floors", "area", "aisle", "aisles", "space", "spaces", "room", "rooms",
        ]
        .contains(&last.as_str())
}

/// Returns the wording used in a built site name, such as "retail store".
pub(super) fn kind_label(kind: SiteKind) -> &'static str {
    match kind {
        SiteKind::Office => "office",
        SiteKind::Warehouse => "warehouse",
        SiteKind::Retail => "retail store",
        SiteKind::Manufacturing => "factory",
        SiteKind::BankBranch => "bank branch",
        SiteKind::Atm => "ATM site",
        SiteKind::Industrial => "industrial site",
        SiteKind::MixedUse => "mixed-use building",
        SiteKind::Hospital => "hospital",
        SiteKind::Other => "site",
    }
}

/// Reads the number of people at the site.
pub(super) fn read_people(sentence: &str, found: &mut CollectedData) {
    let from_headcount = HEADCOUNT
        .captures(sentence)
        .and_then(|captures| captures[1].parse().ok());
    let from_noun = PEOPLE
        .captures_iter(sentence)
        .find_map(|captures| parse_count(&captures[1]));
    if let Some(count) = from_headcount.or(from_noun) {
        found.people_count = Some(count);
    }
}

/// Parses "180", "1,200", "forty" or "forty-five", `None` for other words.
pub(super) fn parse_count(text: &str) -> Option<u32> {
    let digits: String = text.chars().filter(|c| *c != ',').collect();
    if let Ok(number) = digits.parse::<u32>() {
        return (number > 0).then_some(number);
    }
    let mut total = 0;
    for word in text.to_lowercase().split([' ', '-']) {
        total += number_word(word)?;
    }
    Some(total)
}

/// Returns the value of a number word from one to ninety.
pub(super) fn number_word(word: &str) -> Option<u32> {
    const UNITS: [&str; 19] = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if word == "a" || word == "an" || word == "single" {
        return Some(1);
    }
    if let Some(index) = UNITS.iter().position(|unit| *unit == word) {
        return Some(index as u32 + 1);
    }
    TENS.iter()
        .position(|tens| *tens == word)
        .map(|index| (index as u32 + 2) * 10)
}

/// Reads the security level.
pub(super) fn read_security(sentence: &str, found: &mut CollectedData) {
    let word = LEVEL_BEFORE
        .captures(sentence)
        .or_else(|| LEVEL_AFTER.captures(sentence))
        .map(|captures| captures[1].to_lowercase());
    let level = match word.as_deref() {
        Some("basic" | "standard" | "normal" | "low" | "minimal") => SecurityLevel::Basic,
        Some("enhanced" | "elevated" | "medium" | "moderate" | "heightened") => {
            SecurityLevel::Enhanced
        }
        Some(_) => SecurityLevel::High,
        None => return,
    };
    found.security_level = Some(level);
}

/// Reads yes-or-no wishes: GPS tracking, checkpoints, shifts, maintenance and a proposal.
pub(super) fn read_wishes(sentence: &str, found: &mut CollectedData) {
    let negated = NEGATION.is_match(sentence);
    if GPS.is_match(sentence) {
        found.gps_tracking = Some(!negated);
    }
    if MAINTENANCE.is_match(sentence) {
        found.maintenance_requested = Some(!negated);
    }
    if CHECKPOINTS_DECLINED.is_match(sentence) {
        found.checkpoints_requested = Some(false);
    }
    if SHIFTS_DECLINED.is_match(sentence) {
        found.shifts_requested = Some(false);
    }
    if PROPOSAL.is_match(sentence) {
        found.proposal_requested = true;
    }
}

/// Returns whether the whole message only declines, such as "no" or "none, thanks".
pub(super) fn is_refusal(message: &str) -> bool {
    REFUSAL.is_match(message)
}
