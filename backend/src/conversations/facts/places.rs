//! Place facts: zone lists, assets and where they are, requested checkpoints and staffing.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::profile::{number_word, parse_count};
use super::{
    capitalize, AssetFact, AssetKind, CheckpointRequest, CheckpointSubject, CollectedData,
    ShiftRequest, ShiftRole, SiteKind, ZoneFact, ZoneKind,
};

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("place patterns are valid")
}

/// Maximum number of zones one "floors 1 to N" phrase expands to. A longer range stays one zone.
const MAX_FLOORS_EXPANDED: u32 = 60;

/// An explicit zone list: "Areas: ...", "Zones are ...", "The zones to cover are ...".
static ZONE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:the\s+)?(?:main\s+)?(?:areas?|zones?|locations|spaces|parts of the site)\b(?:\s+(?:to cover|to patrol|we have|on site|are|is|include|includes|would be|will be))*\s*[:-]?\s*(.+)$",
    )
});

/// A sentence that may list zones without naming them as such: "The site has ...".
static HAS_CUE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:the site|the building|it|we|there)\s+(?:has|have|includes|consists of|is|are)\s+(.+)$",
    )
});

static ITEM_SEPARATOR: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\s*(?:,|;|&|\band\b|\bplus\b)\s*"));

static LEADING_WORDS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^(?:(?:the|a|an|our|its|their|also|plus|then|both)\s+)+"));

static TRAILING_QUALIFIER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\s+(?:with|which|where|that|for|who|holding|housing|containing|every|each|during|regularly|hourly|daily|twice|once)\b.*$|\s*\(.*$",
    )
});

static FLOORS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:(office|warehouse|retail|shop)\s+)?floors?\s+(\d{1,3})\s*(?:to|-|through|thru|until)\s*(\d{1,3})$",
    )
});

/// Zone kinds by the words that name them, most specific first: "roof plant room" is a plant
/// room and "parking basement" a parking zone.
static ZONE_KINDS: LazyLock<Vec<(Regex, ZoneKind)>> = LazyLock::new(|| {
    [
        (r"plant ?room|boiler room|electrical room|mechanical room|utility room|generator room|pump room|hvac room|switch ?room|substation", ZoneKind::PlantRoom),
        (r"server room|data cent(?:er|re)|data room|\bit room|comms room|communications room|network room|\bidf\b|\bmdf\b", ZoneKind::ServerRoom),
        (r"cash room|cash office|counting room|cash counting", ZoneKind::CashRoom),
        (r"vault|strong ?room|safe room", ZoneKind::Vault),
        (r"\batm\b", ZoneKind::AtmArea),
        (r"loading dock|loading bay|unloading|\bdocks?\b|\bbays\b", ZoneKind::LoadingDock),
        (r"warehouse|storage (?:area|floor)|racking|\baisles\b", ZoneKind::WarehouseFloor),
        (r"office floors?|office area|\boffices\b|open office|workspace|\bfloor \d+", ZoneKind::OfficeFloor),
        (r"parking|car park|garage", ZoneKind::Parking),
        (r"lobby|reception|foyer|atrium|entrance hall", ZoneKind::Lobby),
        (r"\bgates?\b|gatehouse|guard ?house|security cabin|main entrance|entry point|entrance", ZoneKind::Gate),
        (r"perimeter|fence|boundary|compound wall", ZoneKind::Perimeter),
        (r"\broof|rooftop|terrace", ZoneKind::Roof),
    ]
    .into_iter()
    .map(|(pattern, kind)| (regex(&format!("(?i){pattern}")), kind))
    .collect()
});

/// Asset kinds by the words that name them. Within a pattern, longer phrases come first.
static ASSET_KINDS: LazyLock<Vec<(Regex, AssetKind)>> = LazyLock::new(|| {
    [
        (r"(?i)fire alarm (?:control )?panels?|fire panels?|\bfacp\b|fire alarm systems?|fire alarms?", AssetKind::FireAlarmPanel),
        (r"(?i)fire extinguishers?|\bextinguishers?", AssetKind::FireExtinguisher),
        (r"(?i)sprinkler (?:control )?valves?|sprinkler systems?|sprinklers", AssetKind::SprinklerValve),
        (r"(?i)(?:cctv|surveillance|security|ip) cameras?|\bcctv\b|\bcameras?\b", AssetKind::Camera),
        (r"(?i)\bnvrs?\b|\bdvrs?\b|(?:network )?video recorders?", AssetKind::Nvr),
        (r"(?i)(?:access control |card |biometric |badge )readers?|access readers?|access control", AssetKind::AccessReader),
        (r"(?i)(?:diesel |standby |backup )?generators?|\bgensets?\b|\bdg sets?\b", AssetKind::Generator),
        (r"\bUPS\b|(?i:uninterruptible power suppl(?:y|ies))", AssetKind::Ups),
        (r"(?i)\bhvac(?: units?| systems?)?\b|air handling units?|\bahus?\b|\bchillers?\b|air conditioning(?: units?)?", AssetKind::HvacUnit),
        (r"(?i)\belevators?\b|(?:passenger |goods )lifts?\b|\blifts\b", AssetKind::Elevator),
        (r"(?i)(?:fire |water |sump |booster )?\bpumps?\b", AssetKind::Pump),
    ]
    .into_iter()
    .map(|(pattern, kind)| (regex(pattern), kind))
    .collect()
});

/// A location phrase: "near the gate", "at the dock and the perimeter".
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:near|at|in|on|by|inside|outside|beside|next to|covering|over|around|along)\s+(.+)$",
    )
});

static EXIT_ROUTES: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:exit routes?|exit signs?|exit doors?|emergency exits?|fire exits?|escape routes?|exits)\b",
    )
});

static INSPECTION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:check|checked|checks|checking|inspect|inspected|inspection|inspections|patrol|patrolled|verify|verified|monitor|monitored|walk|tour|kept clear|unobstructed)\b",
    )
});

static PATROL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:patrols?|patrolled|patrolling|guard tours?|checkpoints?|check-points?|rounds)\b(.*)$",
    )
});

static FREQUENCY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bevery\s+(\d+|[a-z]+)?\s*(minutes?|mins?|hours?|hrs?)\b|\b(hourly)\b|\bevery (half) an? hour\b|\b(daily|once a day)\b",
    )
});

static STAFFING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|single)\s+(?:security\s+|armed\s+|unarmed\s+|more\s+)?(guards?|supervisors?|technicians?|cleaners?|housekeepers?)\b",
    )
});

static POST: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^\s*(?:posted\s+|stationed\s+|on duty\s+)?(?:in|at|on)\s+(.+?)(?:\s+(?:and|during|per|on|at|for|every|around|from|in|when|while)\b|,|$)",
    )
});

/// Words after "at" or "in" that name a time, not a place.
const TIME_WORDS: [&str; 8] = [
    "night",
    "nights",
    "day",
    "daytime",
    "all times",
    "times",
    "weekends",
    "the weekend",
];

/// Reads a zone list from the sentence, empty when the sentence is not one.
pub(super) fn zone_list(sentence: &str, site_kind: Option<SiteKind>) -> Vec<ZoneFact> {
    if let Some(captures) = ZONE_CUE.captures(sentence) {
        return zones_in(&captures[1], site_kind, false);
    }
    match HAS_CUE.captures(sentence) {
        Some(captures) if !mentions_asset(sentence) => zones_in(&captures[1], site_kind, true),
        _ => Vec::new(),
    }
}

/// Splits a list into zones. When `all_known` is set, every item must name a known zone kind
/// and there must be two or more, so ordinary sentences are not taken for lists.
fn zones_in(body: &str, site_kind: Option<SiteKind>, all_known: bool) -> Vec<ZoneFact> {
    let mut zones = Vec::new();
    for item in ITEM_SEPARATOR.split(body) {
        let item = clean_item(item);
        if item.is_empty() {
            continue;
        }
        if let Some(floors) = floor_range(&item, site_kind) {
            zones.extend(floors);
            continue;
        }
        let kind = zone_kind_of(&item);
        if all_known && kind.is_none() {
            return Vec::new();
        }
        zones.push(zone(capitalize(&item), kind.unwrap_or(ZoneKind::Other)));
    }
    if all_known && zones.len() < 2 {
        return Vec::new();
    }
    zones
}

fn zone(name: String, kind: ZoneKind) -> ZoneFact {
    ZoneFact {
        code: code_from_name(&name),
        name,
        kind,
    }
}

/// Expands "office floors 1 to 4" into one zone per floor.
fn floor_range(item: &str, site_kind: Option<SiteKind>) -> Option<Vec<ZoneFact>> {
    let captures = FLOORS.captures(item)?;
    let first: u32 = captures[2].parse().ok()?;
    let last: u32 = captures[3].parse().ok()?;
    let prefix = captures.get(1).map(|prefix| prefix.as_str().to_lowercase());
    let kind = match prefix.as_deref() {
        Some("office") => ZoneKind::OfficeFloor,
        Some("warehouse") => ZoneKind::WarehouseFloor,
        Some(_) => ZoneKind::Other,
        None => match site_kind {
            None | Some(SiteKind::Office | SiteKind::MixedUse | SiteKind::BankBranch) => {
                ZoneKind::OfficeFloor
            }
            Some(_) => ZoneKind::Other,
        },
    };
    let label = match &prefix {
        Some(prefix) => capitalize(&format!("{prefix} floor")),
        None => "Floor".to_string(),
    };
    if first > last || last - first >= MAX_FLOORS_EXPANDED {
        return Some(vec![zone(capitalize(item), kind)]);
    }
    Some(
        (first..=last)
            .map(|floor| zone(format!("{label} {floor}"), kind))
            .collect(),
    )
}

/// Lowercases a list item and removes leading articles and trailing qualifiers, so "the
/// loading dock with 6 bays" becomes "loading dock".
pub(super) fn clean_item(item: &str) -> String {
    let item = item.trim().trim_end_matches(['.', ':', '!']);
    let item = TRAILING_QUALIFIER.replace(item, "");
    let item = LEADING_WORDS.replace(item.trim(), "");
    item.trim().to_lowercase()
}

/// Returns the zone kind that the words name, `None` when no kind matches.
pub(super) fn zone_kind_of(words: &str) -> Option<ZoneKind> {
    ZONE_KINDS
        .iter()
        .find(|(pattern, _)| pattern.is_match(words))
        .map(|(_, kind)| *kind)
}

/// Builds a zone code from a name: uppercase ASCII letters and digits joined by '-', at most
/// 32 characters, "ZONE" when nothing is left.
pub(super) fn code_from_name(name: &str) -> String {
    let mut code = String::new();
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        let separator = usize::from(!code.is_empty());
        if code.len() + separator + word.len() > 32 {
            break;
        }
        if separator == 1 {
            code.push('-');
        }
        code.push_str(&word.to_ascii_uppercase());
    }
    if code.is_empty() {
        "ZONE".to_string()
    } else {
        code
    }
}

/// Gives each new zone a code no other zone has: a repeated name keeps its code (the merge
/// skips it), a different name with the same code gets a "-2", "-3" suffix.
pub(super) fn dedupe_zone_codes(zones: &mut [ZoneFact], known: &[ZoneFact]) {
    let mut taken: Vec<(String, String)> = known
        .iter()
        .map(|zone| (zone.code.clone(), zone.name.to_lowercase()))
        .collect();
    for zone in zones.iter_mut() {
        let name = zone.name.to_lowercase();
        if taken
            .iter()
            .any(|(code, known)| *code == zone.code && *known == name)
        {
            continue;
        }
        let base = zone.code.clone();
        let mut suffix = 2;
        while taken.iter().any(|(code, _)| *code == zone.code) {
            let tail = format!("-{suffix}");
            zone.code = format!("{}{tail}", &base[..base.len().min(32 - tail.len())]);
            suffix += 1;
        }
        taken.push((zone.code.clone(), name));
    }
}

fn mentions_asset(sentence: &str) -> bool {
    ASSET_KINDS
        .iter()
        .any(|(pattern, _)| pattern.is_match(sentence))
}

/// Reads assets and their locations: "a fire alarm panel near the gate and CCTV cameras at
/// the dock and the perimeter" gives a panel at the gate and cameras at the dock and at the
/// perimeter.
pub(super) fn read_assets(sentence: &str, found: &mut CollectedData) {
    let mut mentions: Vec<(usize, usize, AssetKind)> = Vec::new();
    for (pattern, kind) in ASSET_KINDS.iter() {
        for matched in pattern.find_iter(sentence) {
            mentions.push((matched.start(), matched.end(), *kind));
        }
    }
    // The earliest, then longest, mention wins where two overlap ("fire pump" and "pump").
    mentions.sort_by_key(|(start, end, _)| (*start, usize::MAX - end));
    let mut kept: Vec<(usize, usize, AssetKind)> = Vec::new();
    for mention in mentions {
        if kept.last().is_none_or(|last| mention.0 >= last.1) {
            kept.push(mention);
        }
    }

    for (index, (start, end, kind)) in kept.iter().enumerate() {
        let before = sentence[..*start].to_lowercase();
        let after = &sentence[*end..];
        let negated = before.ends_with("no ") || before.ends_with("without ");
        if negated || after.to_lowercase().starts_with(" room") {
            continue;
        }
        let tail_end = kept.get(index + 1).map_or(sentence.len(), |next| next.0);
        let tail = &sentence[*end..tail_end];
        let name = capitalize(&sentence[*start..*end]);
        let places = places_in(tail);
        if places.is_empty() {
            found.assets.push(AssetFact {
                name: name.clone(),
                kind: *kind,
                zone: None,
            });
        }
        for place in places {
            found.assets.push(AssetFact {
                name: name.clone(),
                kind: *kind,
                zone: Some(place),
            });
        }
    }
}

/// Returns the places named after a preposition in `text`, cleaned.
fn places_in(text: &str) -> Vec<String> {
    let Some(captures) = LOCATION.captures(text) else {
        return Vec::new();
    };
    ITEM_SEPARATOR
        .split(&captures[1])
        .map(clean_item)
        .filter(|place| !place.is_empty() && !TIME_WORDS.contains(&place.as_str()))
        .collect()
}

/// Reads requested checkpoints: exit-route inspections and patrol points.
pub(super) fn read_checkpoint_requests(sentence: &str, found: &mut CollectedData) {
    if found.checkpoints_requested == Some(false) {
        return;
    }
    let frequency = frequency_minutes(sentence);
    if EXIT_ROUTES.is_match(sentence) && INSPECTION.is_match(sentence) {
        found.checkpoints_requested = Some(true);
        found.checkpoint_requests.push(CheckpointRequest {
            subject: CheckpointSubject::ExitRoutes,
            zone: None,
            frequency_minutes: frequency,
        });
        return;
    }
    let Some(captures) = PATROL.captures(sentence) else {
        return;
    };
    found.checkpoints_requested = Some(true);
    // "patrol the perimeter" names the place directly, "checkpoints at the gate" after a
    // preposition.
    let mut places = places_in(&captures[1]);
    if places.is_empty() {
        places = ITEM_SEPARATOR
            .split(&captures[1])
            .map(clean_item)
            .filter(|place| zone_kind_of(place).is_some())
            .collect();
    }
    for place in places {
        found.checkpoint_requests.push(CheckpointRequest {
            subject: CheckpointSubject::Patrol,
            zone: Some(place),
            frequency_minutes: frequency,
        });
    }
}

/// Reads "every 30 minutes", "every two hours", "hourly", "every half hour" or "daily".
fn frequency_minutes(sentence: &str) -> Option<u32> {
    let captures = FREQUENCY.captures(sentence)?;
    if captures.get(3).is_some() {
        return Some(60);
    }
    if captures.get(4).is_some() {
        return Some(30);
    }
    if captures.get(5).is_some() {
        return Some(1440);
    }
    let count = match captures.get(1) {
        Some(count) => parse_count(count.as_str())?,
        None => 1,
    };
    let unit = captures.get(2)?.as_str().to_lowercase();
    let per_unit = if unit.starts_with('h') { 60 } else { 1 };
    Some(count * per_unit)
}

/// Reads staffing such as "one guard in the lobby during open hours".
pub(super) fn read_shift_requests(sentence: &str, found: &mut CollectedData) {
    if found.shifts_requested == Some(false) {
        return;
    }
    let heads: Vec<Captures> = STAFFING.captures_iter(sentence).collect();
    for (index, captures) in heads.iter().enumerate() {
        // The words up to the next staffing phrase name the post of these people.
        let end = captures.get(0).map_or(0, |head| head.end());
        let tail_end = heads
            .get(index + 1)
            .and_then(|next| next.get(0))
            .map_or(sentence.len(), |next| next.start());
        let tail = &sentence[end..tail_end];
        let count_word = captures[1].to_lowercase();
        let Some(people_count) = parse_count(&count_word).or_else(|| number_word(&count_word))
        else {
            continue;
        };
        let role = match captures[2].to_lowercase().trim_end_matches('s') {
            "guard" => ShiftRole::Guard,
            "supervisor" => ShiftRole::Supervisor,
            "technician" => ShiftRole::Technician,
            _ => ShiftRole::Cleaner,
        };
        let zone = POST
            .captures(tail)
            .map(|post| clean_item(&post[1]))
            .filter(|place| !place.is_empty() && !TIME_WORDS.contains(&place.as_str()));
        found.shifts_requested = Some(true);
        found.shift_requests.push(ShiftRequest {
            role,
            people_count,
            zone,
        });
    }
}
