//! Operating hours: "24/7", "Monday to Friday 8am to 8pm, closed on weekends", "9:30 to 16:30
//! mon-sat", "open every day 10am to 10pm".
//!
//! A sentence is read as a sequence of day specifications and time ranges. Each day
//! specification takes the time range next to it, preferring one not separated by a comma, so
//! both "Mon-Fri 8-20, Sat 9-13" and "8-20 Mon-Fri, 9-13 Sat" pair correctly. A time range with
//! no day specification applies to every day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::{ClockTime, OperatingHours, TimeRange, Weekday};

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("hour patterns are valid")
}

/// A day name, short or long, singular or plural.
const DAY: &str = r"(?:mon(?:day)?|tue(?:s|sday)?|wed(?:nesday)?|thu(?:r|rs|rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)s?";

static ALWAYS: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b24\s*/\s*7\b|\b24\s*x\s*7\b|\b(?:a)?round[- ]the[- ]clock\b|\balways open\b|\bnever clos(?:e|es|ed)\b",
    )
});

/// Whole-day phrases that may be limited to some days: "24 hours on weekdays".
static WHOLE_DAY: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(?:24 hours|24 hrs|24h|all day(?: long)?)\b"));

static DAYS: LazyLock<Regex> = LazyLock::new(|| {
    let list = format!(r"{DAY}(?:\s*(?:,|and|&|/|or)\s*{DAY})*");
    let range = format!(r"{DAY}\s*(?:-|to|through|thru|till|until)\s*{DAY}");
    let groups = r"week ?days?|weekends?|every ?day|daily|all week(?: long)?|each day|all days|(?:7|seven) days(?: a| per| of the)?(?: week)?";
    regex(&format!(r"(?i)\b(?:{range}|{groups}|{list})\b"))
});

static DAY_NAME: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"(?i)\b{DAY}\b")));

static DAY_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b({DAY})\s*(?:-|to|through|thru|till|until)\s*({DAY})\b"
    ))
});

static EXCEPT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^\s*,?\s*(?:except|but not|apart from|other than|excluding)\s+(?:on\s+)?(?:the\s+)?$",
    )
});

static CLOSED_BEFORE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(?:closed|shut)\s+(?:on\s+|all\s+)?(?:the\s+)?$"));

static CLOSED_AFTER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^\s*(?:are|is)?\s*(?:closed|shut|off)\b"));

static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    let time = |n: u8| {
        format!(
            r"(?:(?P<h{n}>\d{{1,2}})(?::(?P<m{n}>\d{{2}}))?\s*(?P<a{n}>am|pm|h|hrs)?|(?P<w{n}>noon|midday|midnight))"
        )
    };
    regex(&format!(
        r"(?i)(?:\bfrom\s+)?{}\s*(?:-|to|till|until|til|through)\s*{}\b",
        time(1),
        time(2)
    ))
});

/// Words that show a sentence is about hours, so bare ranges such as "8-20" count.
static HOURS_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:open|opens|opening|hours|operate|operates|operating|run|runs|work|works|working|from|shifts?|closes?)\b",
    )
});

#[derive(Debug, Clone)]
enum Part {
    Days {
        days: BTreeSet<Weekday>,
        closed: bool,
    },
    Range(TimeRange),
}

#[derive(Debug, Clone)]
struct Item {
    start: usize,
    end: usize,
    part: Part,
}

/// Reads the operating hours stated in one sentence, `None` when it states none.
pub(super) fn read(sentence: &str) -> Option<OperatingHours> {
    let mut items = day_items(sentence);
    let has_days = !items.is_empty();
    items.extend(range_items(sentence, has_days));
    items.sort_by_key(|item| item.start);

    let always = ALWAYS.is_match(sentence);
    let has_range = items.iter().any(|item| matches!(item.part, Part::Range(_)));
    if always && !has_range && items.iter().all(|item| is_every_day(&item.part)) {
        return Some(OperatingHours::Always);
    }
    if !has_range
        && !items
            .iter()
            .any(|item| matches!(item.part, Part::Days { closed: true, .. }))
    {
        return None;
    }

    let days = schedule(sentence, &items);
    let every_day_whole = Weekday::ALL
        .iter()
        .all(|day| days.get(day) == Some(&vec![TimeRange::WHOLE_DAY]));
    if every_day_whole {
        return Some(OperatingHours::Always);
    }
    Some(OperatingHours::Weekly { days })
}

fn is_every_day(part: &Part) -> bool {
    matches!(part, Part::Days { days, closed: false } if days.len() == 7)
}

/// Pairs each day specification with a time range and builds the week.
fn schedule(sentence: &str, items: &[Item]) -> BTreeMap<Weekday, Vec<TimeRange>> {
    let mut claimed = vec![false; items.len()];
    let mut pairs: Vec<(usize, BTreeSet<Weekday>)> = Vec::new();
    let mut closed_days = BTreeSet::new();

    for (index, item) in items.iter().enumerate() {
        let Part::Days { days, closed } = &item.part else {
            continue;
        };
        if *closed {
            closed_days.extend(days.iter().copied());
            continue;
        }
        if let Some(range) = pick_range(sentence, items, &claimed, index) {
            claimed[range] = true;
            pairs.push((range, days.clone()));
        }
    }
    for (index, item) in items.iter().enumerate() {
        if matches!(item.part, Part::Range(_)) && !claimed[index] {
            let open_days = Weekday::ALL.iter().copied();
            pairs.push((
                index,
                open_days.filter(|day| !closed_days.contains(day)).collect(),
            ));
        }
    }

    let mut week: BTreeMap<Weekday, Vec<TimeRange>> = BTreeMap::new();
    for day in &closed_days {
        week.insert(*day, Vec::new());
    }
    for (range_index, days) in pairs {
        let Part::Range(range) = items[range_index].part else {
            continue;
        };
        for day in days {
            let ranges = week.entry(day).or_default();
            if !ranges.contains(&range) {
                ranges.push(range);
                ranges.sort();
            }
        }
    }
    week
}

/// Picks the unclaimed time range for the day specification at `index`: the next or previous
/// item when no comma separates them, else the next, else the previous.
fn pick_range(sentence: &str, items: &[Item], claimed: &[bool], index: usize) -> Option<usize> {
    let usable = |other: usize| {
        !claimed[other]
            && matches!(
                items.get(other).map(|item| &item.part),
                Some(Part::Range(_))
            )
    };
    let tight = |first: usize, second: usize| {
        !sentence[items[first].end..items[second].start].contains(',')
    };
    let next = (index + 1 < items.len() && usable(index + 1)).then_some(index + 1);
    let previous = (index > 0 && usable(index - 1)).then(|| index - 1);

    match (next, previous) {
        (Some(next), _) if tight(index, next) => Some(next),
        (_, Some(previous)) if tight(previous, index) => Some(previous),
        (next, previous) => next.or(previous),
    }
}

/// Finds the day specifications, with "except ..." removed and "closed on ..." marked.
fn day_items(sentence: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for found in DAYS.find_iter(sentence) {
        let days = days_of(found.as_str());
        let before = &sentence[..found.start()];
        let after = &sentence[found.end()..];

        if let Some(last) = items.last_mut() {
            if EXCEPT.is_match(&sentence[last.end..found.start()]) {
                if let Part::Days { days: kept, .. } = &mut last.part {
                    kept.retain(|day| !days.contains(day));
                }
                last.end = found.end();
                continue;
            }
        }
        let closed = CLOSED_BEFORE.is_match(before) || CLOSED_AFTER.is_match(after);
        items.push(Item {
            start: found.start(),
            end: found.end(),
            part: Part::Days { days, closed },
        });
    }
    items
}

/// Returns the days a specification names.
fn days_of(text: &str) -> BTreeSet<Weekday> {
    let lower = text.to_lowercase();
    if lower.starts_with("weekend") {
        return [Weekday::Sat, Weekday::Sun].into();
    }
    if lower.starts_with("week") {
        return Weekday::ALL[..5].iter().copied().collect();
    }
    if let Some(captures) = DAY_RANGE.captures(text) {
        let (Some(first), Some(last)) = (weekday(&captures[1]), weekday(&captures[2])) else {
            return BTreeSet::new();
        };
        let first = first as usize;
        let last = last as usize;
        let length = (last + 7 - first) % 7 + 1;
        return (0..length)
            .map(|step| Weekday::ALL[(first + step) % 7])
            .collect();
    }
    let named: BTreeSet<Weekday> = DAY_NAME
        .find_iter(text)
        .filter_map(|name| weekday(name.as_str()))
        .collect();
    if named.is_empty() {
        // "every day", "daily", "all week", "7 days a week".
        return Weekday::ALL.iter().copied().collect();
    }
    named
}

fn weekday(name: &str) -> Option<Weekday> {
    let lower = name.to_lowercase();
    let day = match lower.get(..2)? {
        "mo" => Weekday::Mon,
        "tu" => Weekday::Tue,
        "we" => Weekday::Wed,
        "th" => Weekday::Thu,
        "fr" => Weekday::Fri,
        "sa" => Weekday::Sat,
        "su" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

/// Finds the time ranges. A range without a colon or am/pm on either side, such as "8-20",
/// counts only in a sentence about hours, so "floors 1 to 4" is not read as a time.
fn range_items(sentence: &str, has_days: bool) -> Vec<Item> {
    let context = has_days || HOURS_CONTEXT.is_match(sentence);
    let mut items = Vec::new();
    for captures in RANGE.captures_iter(sentence) {
        let whole = captures.get(0).expect("group 0 always exists");
        let preceded_by_code = sentence[..whole.start()]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == ':' || c == '/');
        if preceded_by_code {
            continue;
        }
        let explicit = ["m1", "m2", "a1", "a2", "w1", "w2"]
            .iter()
            .any(|name| captures.name(name).is_some());
        if !explicit && !context {
            continue;
        }
        if let Some(range) = time_range(&captures) {
            items.push(Item {
                start: whole.start(),
                end: whole.end(),
                part: Part::Range(range),
            });
        }
    }
    for found in WHOLE_DAY.find_iter(sentence) {
        items.push(Item {
            start: found.start(),
            end: found.end(),
            part: Part::Range(TimeRange::WHOLE_DAY),
        });
    }
    items
}

/// A time as read: hour and minute as written, and the am/pm marker if any.
struct Written {
    hour: u16,
    minute: u16,
    meridiem: Option<char>,
    has_minutes: bool,
}

fn written(captures: &Captures, n: u8) -> Option<Written> {
    if let Some(word) = captures.name(&format!("w{n}")) {
        let hour = if word.as_str().eq_ignore_ascii_case("midnight") {
            0
        } else {
            12
        };
        return Some(Written {
            hour,
            minute: 0,
            meridiem: Some('h'),
            has_minutes: true,
        });
    }
    let hour: u16 = captures.name(&format!("h{n}"))?.as_str().parse().ok()?;
    let minutes = captures.name(&format!("m{n}"));
    let minute: u16 = minutes.map_or(Some(0), |m| m.as_str().parse().ok())?;
    let meridiem = captures
        .name(&format!("a{n}"))
        .and_then(|m| m.as_str().to_lowercase().chars().next());
    Some(Written {
        hour,
        minute,
        meridiem,
        has_minutes: minutes.is_some(),
    })
}

/// Converts a written time to 24-hour hours, `None` when impossible such as "13pm".
fn to_24h(time: &Written) -> Option<u16> {
    match time.meridiem {
        Some('a') if (1..=12).contains(&time.hour) => Some(time.hour % 12),
        Some('p') if (1..=12).contains(&time.hour) => Some(time.hour % 12 + 12),
        Some('a' | 'p') => None,
        _ if time.hour == 24 && time.minute == 0 => Some(0),
        _ if time.hour < 24 => Some(time.hour),
        _ => None,
    }
}

/// Builds a range and guesses am or pm where one side lacks it: "9 to 5" is 09:00-17:00, "1 to
/// 5pm" is 13:00-17:00, and "8am to 8" is 08:00-20:00.
fn time_range(captures: &Captures) -> Option<TimeRange> {
    let first = written(captures, 1)?;
    let second = written(captures, 2)?;
    let mut start = to_24h(&first)?;
    let mut end = to_24h(&second)?;

    let twelve_hour =
        |time: &Written| !time.has_minutes && time.meridiem.is_none() && time.hour <= 12;
    if first.meridiem.is_none() && second.meridiem == Some('p') && first.hour < second.hour % 12 {
        start += 12;
    }
    if second.meridiem.is_none() && twelve_hour(&second) && end <= start && end + 12 < 24 {
        end += 12;
    }
    if first.meridiem.is_none() && twelve_hour(&first) && second.meridiem.is_none() && end <= start
    {
        return None;
    }
    Some(TimeRange {
        start: ClockTime::new(start, first.minute)?,
        end: ClockTime::new(end, second.minute)?,
    })
}

/// Combines earlier hours with newer ones. Newer weekly hours replace the days they name. After
/// "24/7", a message that only closes days ("closed on Sundays") closes them and keeps the
/// other days whole, while one that gives times replaces the week.
pub(super) fn merge(
    previous: Option<OperatingHours>,
    newer: Option<OperatingHours>,
) -> Option<OperatingHours> {
    let Some(newer) = newer else {
        return previous;
    };
    let OperatingHours::Weekly { days: new_days } = newer else {
        return Some(OperatingHours::Always);
    };
    let mut days = match previous {
        Some(OperatingHours::Weekly { days }) => days,
        Some(OperatingHours::Always) if new_days.values().all(Vec::is_empty) => Weekday::ALL
            .iter()
            .map(|day| (*day, vec![TimeRange::WHOLE_DAY]))
            .collect(),
        _ => BTreeMap::new(),
    };
    days.extend(new_days);
    Some(OperatingHours::Weekly { days })
}
