//! Facts a conversation collects about a site, stored as the session's `collected_data`, and the
//! offline extractor that reads them from chat messages.
//!
//! The extractor is rule-based: it recognizes ordinary phrasing of each fact ("24/7", "Monday to
//! Friday 8am to 8pm, closed on weekends", "about 180 staff", "HIGH security", zone and asset
//! lists) and ignores everything else. It has no notion of deleting or of approvals, so a message
//! cannot ask it for either, and a message that screening flags as a suspected prompt injection
//! contributes no facts at all.
//!
//! Enum values are the exact values of the facility configuration tables, so facts map onto
//! operations without translation.

mod hours;
mod places;
mod profile;
mod topics;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::providers::screening;

pub use topics::{missing_topics, next_question, ready_to_recommend, Topic};

/// Declares a string-valued enum with its `ALL` list and its stored name.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Returns the name stored in configuration rows.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

named_enum! {
    /// Kind of site, as the `sites.kind` column accepts it.
    SiteKind {
        /// Offices.
        Office => "office",
        /// A warehouse or distribution centre.
        Warehouse => "warehouse",
        /// A shop or store.
        Retail => "retail",
        /// A factory.
        Manufacturing => "manufacturing",
        /// A bank branch.
        BankBranch => "bank_branch",
        /// A stand-alone ATM site.
        Atm => "atm",
        /// An industrial site other than a factory.
        Industrial => "industrial",
        /// A building with several uses.
        MixedUse => "mixed_use",
        /// A hospital or clinic.
        Hospital => "hospital",
        /// Anything else.
        Other => "other",
    }
}

named_enum! {
    /// Security level of a site. Security settings follow it unless overridden.
    SecurityLevel {
        /// No GPS tracking, 100 m permissible distance.
        Basic => "basic",
        /// GPS tracking, 50 m permissible distance.
        Enhanced => "enhanced",
        /// GPS tracking and sleeping-guard detection, 50 m permissible distance.
        High => "high",
    }
}

named_enum! {
    /// Kind of zone, as the `zones.kind` column accepts it.
    ZoneKind {
        /// An entrance gate or gatehouse.
        Gate => "gate",
        /// The fence or boundary.
        Perimeter => "perimeter",
        /// A lobby or reception.
        Lobby => "lobby",
        /// A vault or strong room.
        Vault => "vault",
        /// A server or network room.
        ServerRoom => "server_room",
        /// A cash room.
        CashRoom => "cash_room",
        /// The area around an ATM.
        AtmArea => "atm_area",
        /// A car park or parking garage.
        Parking => "parking",
        /// A loading dock or bay.
        LoadingDock => "loading_dock",
        /// The storage floor of a warehouse.
        WarehouseFloor => "warehouse_floor",
        /// An office floor.
        OfficeFloor => "office_floor",
        /// A plant, boiler or electrical room.
        PlantRoom => "plant_room",
        /// The roof.
        Roof => "roof",
        /// Anything else.
        Other => "other",
    }
}

named_enum! {
    /// Kind of asset, as the `assets.kind` and `maintenance_schedules.asset_kind` columns accept it.
    AssetKind {
        /// A CCTV camera.
        Camera => "camera",
        /// A network video recorder.
        Nvr => "nvr",
        /// A card or biometric access reader.
        AccessReader => "access_reader",
        /// A portable fire extinguisher.
        FireExtinguisher => "fire_extinguisher",
        /// A fire alarm control panel.
        FireAlarmPanel => "fire_alarm_panel",
        /// A sprinkler control valve.
        SprinklerValve => "sprinkler_valve",
        /// A standby generator.
        Generator => "generator",
        /// An uninterruptible power supply.
        Ups => "ups",
        /// Heating, ventilation or air conditioning equipment.
        HvacUnit => "hvac_unit",
        /// An elevator.
        Elevator => "elevator",
        /// A water or fire pump.
        Pump => "pump",
        /// Anything else.
        Other => "other",
    }
}

named_enum! {
    /// Role of the people on a shift, as the `shifts.role` column accepts it.
    ShiftRole {
        /// A security guard.
        Guard => "guard",
        /// A guard supervisor.
        Supervisor => "supervisor",
        /// A maintenance technician.
        Technician => "technician",
        /// A cleaner.
        Cleaner => "cleaner",
    }
}

named_enum! {
    /// Day of the week, named as shifts and opening hours store it.
    Weekday {
        /// Monday.
        Mon => "mon",
        /// Tuesday.
        Tue => "tue",
        /// Wednesday.
        Wed => "wed",
        /// Thursday.
        Thu => "thu",
        /// Friday.
        Fri => "fri",
        /// Saturday.
        Sat => "sat",
        /// Sunday.
        Sun => "sun",
    }
}

named_enum! {
    /// Purpose of a requested checkpoint.
    CheckpointSubject {
        /// Exit routes, exit doors and exit signs are inspected on the tour.
        ExitRoutes => "exit_routes",
        /// A guard patrol point in a zone.
        Patrol => "patrol",
    }
}

/// Minutes in a day.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// A local time of day, stored as `"HH:MM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    /// Creates a time from hours (0-23) and minutes (0-59), `None` when out of range.
    pub fn new(hour: u16, minute: u16) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(Self(hour * 60 + minute))
    }

    /// Returns the minutes since midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// Creates a time from minutes since midnight, wrapping at 24 hours.
    pub fn from_minutes(minutes: u32) -> Self {
        Self((minutes % u32::from(MINUTES_PER_DAY)) as u16)
    }

    /// Parses `"HH:MM"` with a two-digit hour.
    pub fn parse(text: &str) -> Option<Self> {
        let (hour, minute) = text.split_once(':')?;
        if hour.len() != 2 || minute.len() != 2 {
            return None;
        }
        Self::new(hour.parse().ok()?, minute.parse().ok()?)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid time {text:?}: use HH:MM, such as 09:30"))
        })
    }
}

/// An opening interval of one day. An end at or before the start crosses midnight, so
/// `00:00-00:00` is the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Local opening time.
    pub start: ClockTime,
    /// Local closing time.
    pub end: ClockTime,
}

impl TimeRange {
    /// The whole day, midnight to midnight.
    pub const WHOLE_DAY: TimeRange = TimeRange {
        start: ClockTime(0),
        end: ClockTime(0),
    };

    /// Returns the length in minutes, 1 to 1440.
    pub fn minutes(self) -> u16 {
        if self.end > self.start {
            self.end.0 - self.start.0
        } else {
            MINUTES_PER_DAY - self.start.0 + self.end.0
        }
    }
}

/// When a site is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatingHours {
    /// Open around the clock, every day.
    Always,
    /// Open on the listed days. An empty list marks a day the user called closed, and a day
    /// not listed was not mentioned. Shift planning treats both as closed.
    Weekly {
        /// Opening intervals per day.
        days: BTreeMap<Weekday, Vec<TimeRange>>,
    },
}

impl OperatingHours {
    /// Returns the opening intervals of `day`, empty when closed or not mentioned.
    pub fn on(&self, day: Weekday) -> Vec<TimeRange> {
        match self {
            Self::Always => vec![TimeRange::WHOLE_DAY],
            Self::Weekly { days } => days.get(&day).cloned().unwrap_or_default(),
        }
    }
}

/// A zone the user named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFact {
    /// Zone code derived from the name, unique within the site.
    pub code: String,
    /// The name from the message, capitalized.
    pub name: String,
    /// The zone kind the name maps to.
    pub kind: ZoneKind,
}

/// An asset the user named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFact {
    /// The name from the message, capitalized.
    pub name: String,
    /// The asset kind the name maps to.
    pub kind: AssetKind,
    /// The words naming its location, such as "gate", resolved to a zone when proposing.
    pub zone: Option<String>,
}

/// A checkpoint the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// Purpose of the checkpoint.
    pub subject: CheckpointSubject,
    /// The words naming its location, when given.
    pub zone: Option<String>,
    /// Minutes between guard visits, when given.
    pub frequency_minutes: Option<u32>,
}

/// Staffing the user asked for during the operating hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftRequest {
    /// Role of the people.
    pub role: ShiftRole,
    /// People on duty at a time.
    pub people_count: u32,
    /// The words naming their post, when given.
    pub zone: Option<String>,
}

/// Facts collected about one site, merged over the turns of a conversation.
///
/// Every field is optional or a list, so `{}` is the empty state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectedData {
    /// Site code, uppercased.
    pub site_code: Option<String>,
    /// Site name when the user gave one.
    pub site_name: Option<String>,
    /// City the site is in.
    pub city: Option<String>,
    /// Building within a campus, such as "Tower 2".
    pub building: Option<String>,
    /// Kind of site.
    pub site_kind: Option<SiteKind>,
    /// IANA time zone, when the user named one.
    pub timezone: Option<String>,
    /// People working at the site.
    pub people_count: Option<u32>,
    /// Operating hours.
    pub hours: Option<OperatingHours>,
    /// Security level.
    pub security_level: Option<SecurityLevel>,
    /// Whether guards are tracked by GPS, when the user stated it either way.
    pub gps_tracking: Option<bool>,
    /// Zones, in the order named.
    pub zones: Vec<ZoneFact>,
    /// Assets, in the order named.
    pub assets: Vec<AssetFact>,
    /// Whether guard checkpoints are requested, when the user stated it either way.
    pub checkpoints_requested: Option<bool>,
    /// Checkpoints asked for.
    pub checkpoint_requests: Vec<CheckpointRequest>,
    /// Whether staffing shifts are requested, when the user stated it either way.
    pub shifts_requested: Option<bool>,
    /// Staffing asked for.
    pub shift_requests: Vec<ShiftRequest>,
    /// Whether maintenance schedules are requested, when the user stated it either way.
    pub maintenance_requested: Option<bool>,
    /// Topics the user declined, so no question repeats them.
    pub skipped_topics: Vec<Topic>,
    /// Whether the user asked for a proposal.
    pub proposal_requested: bool,
}

impl CollectedData {
    /// Parses stored `collected_data`. Unknown fields and invalid values fail.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value.clone()).map_err(|error| error.to_string())
    }

    /// Returns the value to store as `collected_data`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("collected data always serializes")
    }

    /// Returns the site name: the one the user gave, else one built from the city, the kind
    /// and the building, else the site code.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = &self.site_name {
            return Some(name.clone());
        }
        let kind = self.site_kind.map(profile::kind_label);
        let mut name = match (&self.city, kind) {
            (Some(city), Some(kind)) => format!("{city} {kind}"),
            (Some(city), None) => format!("{city} site"),
            (None, Some(kind)) => capitalize(kind),
            (None, None) => self.site_code.clone()?,
        };
        if let Some(building) = &self.building {
            name = format!("{name}, {building}");
        }
        Some(name)
    }

    /// Returns the zone that the words `place` (such as "the dock") refer to: a zone of the
    /// same kind, else one whose name contains the words.
    pub fn zone_for(&self, place: &str) -> Option<&ZoneFact> {
        let words = places::clean_item(place);
        if let Some(kind) = places::zone_kind_of(&words) {
            if let Some(zone) = self.zones.iter().find(|zone| zone.kind == kind) {
                return Some(zone);
            }
        }
        self.zones
            .iter()
            .find(|zone| zone.name.to_lowercase().contains(&words))
    }

    /// Adds the facts of `newer` to these: values it has replace, and list items are added
    /// unless already present.
    pub fn merge(&mut self, newer: CollectedData) {
        fn replace<T>(slot: &mut Option<T>, newer: Option<T>) {
            if newer.is_some() {
                *slot = newer;
            }
        }

        replace(&mut self.site_code, newer.site_code);
        replace(&mut self.site_name, newer.site_name);
        replace(&mut self.city, newer.city);
        replace(&mut self.building, newer.building);
        replace(&mut self.site_kind, newer.site_kind);
        replace(&mut self.timezone, newer.timezone);
        replace(&mut self.people_count, newer.people_count);
        replace(&mut self.security_level, newer.security_level);
        replace(&mut self.gps_tracking, newer.gps_tracking);
        replace(&mut self.checkpoints_requested, newer.checkpoints_requested);
        replace(&mut self.shifts_requested, newer.shifts_requested);
        replace(&mut self.maintenance_requested, newer.maintenance_requested);
        self.hours = hours::merge(self.hours.take(), newer.hours);

        for zone in newer.zones {
            if !self.zones.iter().any(|known| known.code == zone.code) {
                self.zones.push(zone);
            }
        }
        add_new(&mut self.assets, newer.assets);
        add_new(&mut self.checkpoint_requests, newer.checkpoint_requests);
        for request in newer.shift_requests {
            // A later statement about the same role and place corrects the earlier one.
            self.shift_requests
                .retain(|known| (known.role, &known.zone) != (request.role, &request.zone));
            self.shift_requests.push(request);
        }
        add_new(&mut self.skipped_topics, newer.skipped_topics);
        self.proposal_requested |= newer.proposal_requested;
    }
}

fn add_new<T: PartialEq>(list: &mut Vec<T>, items: Vec<T>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Result of reading one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extraction {
    /// The earlier facts with this message's facts merged in.
    pub data: CollectedData,
    /// Only the facts this message stated.
    pub found: CollectedData,
    /// Whether screening flagged the message, in which case nothing was taken from it.
    pub flagged: bool,
}

/// Reads the facts of `message` and merges them into `previous`.
///
/// A message that screening flags as a suspected prompt injection is ignored whole, because
/// its facts cannot be trusted either. A short refusal ("no", "none", "skip") with no other
/// facts marks the topic that `previous` would have been asked about next as skipped.
pub fn extract(previous: &CollectedData, message: &str) -> Extraction {
    let screened = screening::screen(message);
    if screened.flagged {
        return Extraction {
            data: previous.clone(),
            found: CollectedData::default(),
            flagged: true,
        };
    }

    let mut found = facts_in(&screened.text, previous);
    if found == CollectedData::default() && profile::is_refusal(&screened.text) {
        if let Some(topic) = missing_topics(previous).first() {
            found.skipped_topics.push(*topic);
        }
    }

    let mut data = previous.clone();
    data.merge(found.clone());
    Extraction {
        data,
        found,
        flagged: false,
    }
}

/// Reads the facts stated in `message`. `known` supplies earlier facts that help interpret it,
/// such as the site kind when naming floors.
pub fn facts_in(message: &str, known: &CollectedData) -> CollectedData {
    let text = normalize(message);
    let mut found = CollectedData::default();
    let sentences = split_sentences(&text);

    for sentence in &sentences {
        let zone_list = places::zone_list(sentence, known.site_kind);
        // A zone list names places, so words such as "office floors 1 to 4" or "generator
        // room" in it are not read as a site kind, opening hours or assets.
        if zone_list.is_empty() {
            profile::read_site(sentence, &mut found);
            places::read_assets(sentence, &mut found);
            if let Some(hours) = hours::read(sentence) {
                found.hours = hours::merge(found.hours.take(), Some(hours));
            }
        } else {
            found.zones.extend(zone_list);
        }
        profile::read_people(sentence, &mut found);
        profile::read_security(sentence, &mut found);
        profile::read_wishes(sentence, &mut found);
        places::read_checkpoint_requests(sentence, &mut found);
        places::read_shift_requests(sentence, &mut found);
    }

    places::dedupe_zone_codes(&mut found.zones, &known.zones);
    found
}

/// Rewrites spellings that the patterns would otherwise need to repeat: "a.m." becomes "am",
/// "8.30" becomes "8:30", dashes become '-', and runs of spaces become one space.
fn normalize(message: &str) -> String {
    let text = message
        .replace(['\u{2013}', '\u{2014}', '\u{2012}', '\u{2212}'], "-")
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201C}', '\u{201D}'], "\"");
    let text = profile::MERIDIEM_DOTS.replace_all(&text, "${1}m");
    let text = profile::DOTTED_TIME.replace_all(&text, "${1}:${2}");
    profile::SPACES.replace_all(&text, " ").into_owned()
}

/// Splits text at sentence ends (`.`, `;`, `!`, `?` followed by a space or the end) and at line
/// breaks. Dots inside codes and numbers do not end a sentence.
fn split_sentences(text: &str) -> Vec<String> {
    profile::SENTENCE_END
        .split(text)
        .map(|sentence| sentence.trim().to_string())
        .filter(|sentence| !sentence.is_empty())
        .collect()
}

/// Uppercases the first letter.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
