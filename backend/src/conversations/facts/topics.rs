//! The topic checklist: which topics still lack an answer, the next question, and when there is
//! enough to recommend a setup.

use serde::{Deserialize, Serialize};

use super::CollectedData;

/// A topic of the checklist. Variants are in question order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Site code and kind.
    SiteProfile,
    /// How many people work at the site.
    Users,
    /// When the site is open.
    OperatingHours,
    /// Basic, enhanced or high.
    SecurityLevel,
    /// The areas guards cover.
    Zones,
    /// Equipment to track.
    Assets,
    /// Guard tour checkpoints.
    Checkpoints,
    /// Staffing shifts.
    Shifts,
    /// Maintenance schedules.
    Maintenance,
}

impl Topic {
    /// Every topic, in the order asked.
    pub const ALL: [Topic; 9] = [
        Topic::SiteProfile,
        Topic::Users,
        Topic::OperatingHours,
        Topic::SecurityLevel,
        Topic::Zones,
        Topic::Assets,
        Topic::Checkpoints,
        Topic::Shifts,
        Topic::Maintenance,
    ];

    /// Topics without which no setup can be proposed: the site row needs a code, a kind and a
    /// security level, and shifts need the operating hours.
    pub const REQUIRED: [Topic; 3] = [
        Topic::SiteProfile,
        Topic::OperatingHours,
        Topic::SecurityLevel,
    ];

    /// Returns whether `data` covers the topic, or the user declined it.
    pub fn is_answered(self, data: &CollectedData) -> bool {
        if data.skipped_topics.contains(&self) && !Self::REQUIRED.contains(&self) {
            return true;
        }
        match self {
            Topic::SiteProfile => data.site_code.is_some() && data.site_kind.is_some(),
            Topic::Users => data.people_count.is_some(),
            Topic::OperatingHours => data.hours.is_some(),
            Topic::SecurityLevel => data.security_level.is_some(),
            Topic::Zones => !data.zones.is_empty(),
            Topic::Assets => !data.assets.is_empty(),
            Topic::Checkpoints => {
                data.checkpoints_requested.is_some() || !data.checkpoint_requests.is_empty()
            }
            Topic::Shifts => data.shifts_requested.is_some() || !data.shift_requests.is_empty(),
            Topic::Maintenance => data.maintenance_requested.is_some(),
        }
    }

    /// Returns the question about the topic, in plain English.
    pub fn question(self, data: &CollectedData) -> String {
        let text = match self {
            Topic::SiteProfile => match (&data.site_code, data.site_kind) {
                (None, Some(_)) => "What is the site code, for example WH-PUNE-01?",
                (Some(_), None) => {
                    "What kind of site is it: an office, a warehouse, a retail store, a \
                     factory, a bank branch, a hospital or something else?"
                }
                _ => {
                    "Which site are we setting up? Please give its site code (for example \
                     WH-PUNE-01) and say what kind of site it is, such as an office, a \
                     warehouse or a retail store."
                }
            },
            Topic::Users => "About how many people work at the site?",
            Topic::OperatingHours => {
                "What are the operating hours? For example \"Monday to Friday 8am to 8pm, \
                 closed on weekends\" or \"24/7\"."
            }
            Topic::SecurityLevel => {
                "What level of security does the site need: basic, enhanced or high? \
                 Enhanced and high turn on GPS tracking of guards."
            }
            Topic::Zones => {
                "Which areas should guards cover? For example the main gate, the perimeter, \
                 the lobby, a loading dock or a server room."
            }
            Topic::Assets => {
                "Which equipment should we track, such as fire alarm panels, CCTV cameras, \
                 generators or fire extinguishers, and where is each one?"
            }
            Topic::Checkpoints => {
                "Should guards check in at patrol checkpoints, and is there anything they \
                 should inspect on their rounds, such as exit routes?"
            }
            Topic::Shifts => "How many guards do you need on duty at a time, and where?",
            Topic::Maintenance => {
                "Should I add maintenance schedules for your equipment, following the \
                 standards in the knowledge base?"
            }
        };
        text.to_string()
    }
}

/// Returns the topics that `data` does not cover yet, in question order.
pub fn missing_topics(data: &CollectedData) -> Vec<Topic> {
    Topic::ALL
        .into_iter()
        .filter(|topic| !topic.is_answered(data))
        .collect()
}

/// Returns the question for the first unanswered topic, `None` when every topic is answered.
pub fn next_question(data: &CollectedData) -> Option<String> {
    missing_topics(data)
        .first()
        .map(|topic| topic.question(data))
}

/// Returns whether a setup can be proposed: the required topics are covered, and either every
/// topic is covered or the user requested a proposal.
pub fn ready_to_recommend(data: &CollectedData) -> bool {
    let missing = missing_topics(data);
    let required_done = !missing.iter().any(|topic| Topic::REQUIRED.contains(topic));
    required_done && (missing.is_empty() || data.proposal_requested)
}
