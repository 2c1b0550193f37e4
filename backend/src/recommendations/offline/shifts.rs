//! Shift planning: shifts that cover the operating hours, never on a closed day, and the
//! coverage check the offline checker runs on any set of shifts.

use std::collections::BTreeMap;

use crate::conversations::facts::{
    ClockTime, OperatingHours, SecurityLevel, ShiftRequest, ShiftRole, TimeRange, Weekday,
    MINUTES_PER_DAY,
};

/// Maximum opening interval one shift covers, because a longer interval is split.
pub const MAX_SHIFT_MINUTES: u16 = 12 * 60;

/// Length of the shifts a split aims for.
pub const TARGET_SHIFT_MINUTES: u16 = 8 * 60;

/// Start of the first of the three shifts of a whole day, a common change-over time.
pub const WHOLE_DAY_FIRST_START: u16 = 6 * 60;

/// A planned shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedShift {
    /// Unique name within the site.
    pub name: String,
    /// Local start time.
    pub start: ClockTime,
    /// Local end time. An end at or before the start means the shift ends the next day.
    pub end: ClockTime,
    /// Days the shift starts on.
    pub weekdays: Vec<Weekday>,
    /// People on duty.
    pub people_count: u32,
    /// Their role.
    pub role: ShiftRole,
    /// Their post, when the user named one.
    pub post: Option<String>,
}

/// Returns the default number of guards on duty at a time: one for basic security, two for
/// enhanced, three for high. It is a starting point for the manager to adjust, not a standard.
pub fn default_guards(level: SecurityLevel) -> u32 {
    match level {
        SecurityLevel::Basic => 1,
        SecurityLevel::Enhanced => 2,
        SecurityLevel::High => 3,
    }
}

/// Plans shifts covering `hours`: one set per staffing request, or one set of guard shifts
/// when there is no guard request. Days with the same opening intervals share shifts.
pub fn plan(
    hours: &OperatingHours,
    requests: &[ShiftRequest],
    level: SecurityLevel,
) -> Vec<PlannedShift> {
    let mut staffing: Vec<(ShiftRole, u32, Option<String>)> = requests
        .iter()
        .map(|request| (request.role, request.people_count, request.zone.clone()))
        .collect();
    if !requests
        .iter()
        .any(|request| request.role == ShiftRole::Guard)
    {
        staffing.insert(0, (ShiftRole::Guard, default_guards(level), None));
    }

    let mut groups: BTreeMap<Vec<TimeRange>, Vec<Weekday>> = BTreeMap::new();
    for day in Weekday::ALL {
        let ranges = hours.on(*day);
        if !ranges.is_empty() {
            groups.entry(ranges).or_default().push(*day);
        }
    }

    let mut shifts = Vec::new();
    for (role, people_count, post) in staffing {
        for (ranges, days) in &groups {
            for range in ranges {
                for block in split(*range) {
                    shifts.push(PlannedShift {
                        name: shift_name(role, post.as_deref(), days, block),
                        start: block.start,
                        end: block.end,
                        weekdays: days.clone(),
                        people_count,
                        role,
                        post: post.clone(),
                    });
                }
            }
        }
    }
    shifts
}

/// Splits an opening interval into shifts of at most [`MAX_SHIFT_MINUTES`]: a longer interval
/// becomes equal parts close to [`TARGET_SHIFT_MINUTES`], and the whole day becomes three
/// 8-hour shifts from 06:00.
fn split(range: TimeRange) -> Vec<TimeRange> {
    let minutes = u32::from(range.minutes());
    if minutes <= u32::from(MAX_SHIFT_MINUTES) {
        return vec![range];
    }
    let start = if range == TimeRange::WHOLE_DAY {
        u32::from(WHOLE_DAY_FIRST_START)
    } else {
        u32::from(range.start.minutes())
    };
    let parts = minutes.div_ceil(u32::from(TARGET_SHIFT_MINUTES));
    (0..parts)
        .map(|part| TimeRange {
            start: ClockTime::from_minutes(start + minutes * part / parts),
            end: ClockTime::from_minutes(start + minutes * (part + 1) / parts),
        })
        .collect()
}

/// Builds a name such as "Lobby guard Mon-Fri 08:00-20:00", at most 100 characters.
fn shift_name(role: ShiftRole, post: Option<&str>, days: &[Weekday], block: TimeRange) -> String {
    let role = role.as_str();
    let who = match post {
        Some(post) => format!("{} {role}", capitalize(post)),
        None => capitalize(role),
    };
    let name = format!("{who} {} {}-{}", days_label(days), block.start, block.end);
    name.chars().take(100).collect()
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Returns "daily", a run such as "Mon-Fri", or a list such as "Mon, Wed, Fri".
pub fn days_label(days: &[Weekday]) -> String {
    let title = |day: &Weekday| capitalize(day.as_str());
    if days.len() == 7 {
        return "daily".to_string();
    }
    let positions: Vec<usize> = days.iter().map(|day| *day as usize).collect();
    let consecutive = positions.windows(2).all(|pair| pair[1] == pair[0] + 1);
    match days {
        [single] => title(single),
        [first, .., last] if consecutive => format!("{}-{}", title(first), title(last)),
        _ => days.iter().map(title).collect::<Vec<_>>().join(", "),
    }
}

/// Minutes in a week.
const WEEK_MINUTES: usize = 7 * MINUTES_PER_DAY as usize;

/// Marks the minutes of the week covered by `range` starting on `day`. A range that crosses
/// midnight continues into the next day, and Sunday wraps to Monday.
fn mark(week: &mut [bool], day: Weekday, range: TimeRange) {
    let start = day as usize * usize::from(MINUTES_PER_DAY) + usize::from(range.start.minutes());
    for minute in 0..usize::from(range.minutes()) {
        week[(start + minute) % WEEK_MINUTES] = true;
    }
}

/// A shift's times and days, the input of the coverage check.
#[derive(Debug, Clone)]
pub struct ShiftSpan {
    /// The shift's local times.
    pub range: TimeRange,
    /// Days it starts on.
    pub weekdays: Vec<Weekday>,
}

/// Returns, per day, the open minutes that no shift covers.
pub fn uncovered_minutes(hours: &OperatingHours, shifts: &[ShiftSpan]) -> BTreeMap<Weekday, u32> {
    let mut open = vec![false; WEEK_MINUTES];
    let mut covered = vec![false; WEEK_MINUTES];
    for day in Weekday::ALL {
        for range in hours.on(*day) {
            mark(&mut open, *day, range);
        }
    }
    for shift in shifts {
        for day in &shift.weekdays {
            mark(&mut covered, *day, shift.range);
        }
    }

    let mut gaps = BTreeMap::new();
    for day in Weekday::ALL {
        let from = *day as usize * usize::from(MINUTES_PER_DAY);
        let missing = (from..from + usize::from(MINUTES_PER_DAY))
            .filter(|minute| open[*minute] && !covered[*minute])
            .count() as u32;
        if missing > 0 {
            gaps.insert(*day, missing);
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange {
            start: ClockTime::parse(start).unwrap(),
            end: ClockTime::parse(end).unwrap(),
        }
    }

    fn spans(shifts: &[PlannedShift]) -> Vec<ShiftSpan> {
        shifts
            .iter()
            .map(|shift| ShiftSpan {
                range: TimeRange {
                    start: shift.start,
                    end: shift.end,
                },
                weekdays: shift.weekdays.clone(),
            })
            .collect()
    }

    #[test]
    fn always_open_gets_three_eight_hour_shifts() {
        let shifts = plan(&OperatingHours::Always, &[], SecurityLevel::High);
        let times: Vec<String> = shifts
            .iter()
            .map(|shift| format!("{}-{}", shift.start, shift.end))
            .collect();
        assert_eq!(times, vec!["06:00-14:00", "14:00-22:00", "22:00-06:00"]);
        for shift in &shifts {
            assert_eq!(shift.weekdays, Weekday::ALL.to_vec());
            assert_eq!(shift.people_count, 3);
            assert_eq!(shift.role, ShiftRole::Guard);
        }
        assert!(uncovered_minutes(&OperatingHours::Always, &spans(&shifts)).is_empty());
    }

    #[test]
    fn weekday_hours_one_shift() {
        let mut days = BTreeMap::new();
        for day in &Weekday::ALL[..5] {
            days.insert(*day, vec![range("08:00", "20:00")]);
        }
        days.insert(Weekday::Sat, vec![]);
        days.insert(Weekday::Sun, vec![]);
        let hours = OperatingHours::Weekly { days };
        let request = ShiftRequest {
            role: ShiftRole::Guard,
            people_count: 1,
            zone: Some("lobby".to_string()),
        };
        let shifts = plan(&hours, &[request], SecurityLevel::Basic);
        assert_eq!(shifts.len(), 1);
        assert_eq!(shifts[0].name, "Lobby guard Mon-Fri 08:00-20:00");
        assert_eq!(shifts[0].weekdays, Weekday::ALL[..5].to_vec());
        assert!(uncovered_minutes(&hours, &spans(&shifts)).is_empty());
    }

    #[test]
    fn long_day_is_split_evenly() {
        let parts = split(range("06:00", "22:00"));
        assert_eq!(
            parts,
            vec![range("06:00", "14:00"), range("14:00", "22:00")]
        );
        let parts = split(range("07:00", "20:00"));
        assert_eq!(
            parts,
            vec![range("07:00", "13:30"), range("13:30", "20:00")]
        );
    }

    #[test]
    fn coverage_reports_gaps_per_day() {
        let mut days = BTreeMap::new();
        days.insert(Weekday::Mon, vec![range("08:00", "20:00")]);
        days.insert(Weekday::Sun, vec![range("22:00", "02:00")]);
        let hours = OperatingHours::Weekly { days };
        let shifts = vec![ShiftSpan {
            range: range("08:00", "18:00"),
            weekdays: vec![Weekday::Mon],
        }];
        let gaps = uncovered_minutes(&hours, &shifts);
        // Two hours on Monday evening and the Sunday night interval, which wraps to Monday.
        assert_eq!(gaps.get(&Weekday::Mon), Some(&(120 + 120)));
        assert_eq!(gaps.get(&Weekday::Sun), Some(&120));
    }

    #[test]
    fn day_labels() {
        assert_eq!(days_label(&Weekday::ALL[..5]), "Mon-Fri");
        assert_eq!(days_label(Weekday::ALL), "daily");
        assert_eq!(days_label(&[Weekday::Mon, Weekday::Wed]), "Mon, Wed");
        assert_eq!(days_label(&[Weekday::Sat]), "Sat");
    }
}
