//! The conversation state machine: every move between the seven states goes through
//! [`transition`].
//!
//! ```text
//! started --ask--> in_progress --recommend--> generating_recommendations
//!    --proposal_ready--> awaiting_user_approval --apply--> completed
//! any active state --cancel--> cancelled
//! any active state --fail (failure, escalation, stuck run)--> error
//! ```
//!
//! Completed, cancelled and error are terminal: nothing leaves them, so a late job cannot
//! revive a conversation the manager has closed.

use serde::{Deserialize, Serialize};

use super::ConversationState;

/// Something that happens to a conversation and may move it to another state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The assistant asked its first questions.
    Ask,
    /// The manager asked for a recommendation.
    Recommend,
    /// The consensus finished and a proposal waits for the manager.
    ProposalReady,
    /// The proposal's change set was applied.
    Apply,
    /// The manager cancelled, or the session went stale.
    Cancel,
    /// An unrecoverable failure, an escalation, or a recommendation run stuck too long.
    Fail,
}

impl Event {
    /// Every event, for table tests.
    pub const ALL: [Event; 6] = [
        Event::Ask,
        Event::Recommend,
        Event::ProposalReady,
        Event::Apply,
        Event::Cancel,
        Event::Fail,
    ];

    /// Returns the event's name, as the audit trail records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Ask => "ask",
            Event::Recommend => "recommend",
            Event::ProposalReady => "proposal_ready",
            Event::Apply => "apply",
            Event::Cancel => "cancel",
            Event::Fail => "fail",
        }
    }
}

impl ConversationState {
    /// Every state, for table tests.
    pub const ALL: [ConversationState; 7] = [
        ConversationState::Started,
        ConversationState::InProgress,
        ConversationState::GeneratingRecommendations,
        ConversationState::AwaitingUserApproval,
        ConversationState::Completed,
        ConversationState::Cancelled,
        ConversationState::Error,
    ];

    /// States that count as active: at most one per user and site.
    pub const ACTIVE: [ConversationState; 4] = [
        ConversationState::Started,
        ConversationState::InProgress,
        ConversationState::GeneratingRecommendations,
        ConversationState::AwaitingUserApproval,
    ];

    /// Returns the name stored in `conversation_sessions.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Started => "started",
            ConversationState::InProgress => "in_progress",
            ConversationState::GeneratingRecommendations => "generating_recommendations",
            ConversationState::AwaitingUserApproval => "awaiting_user_approval",
            ConversationState::Completed => "completed",
            ConversationState::Cancelled => "cancelled",
            ConversationState::Error => "error",
        }
    }

    /// Parses a stored state name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Returns whether the conversation is still open.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a conversation in state {} cannot take the event {}", .from.as_str(), .event.as_str())]
pub struct RefusedTransition {
    /// The current state.
    pub from: ConversationState,
    /// The event that does not apply to it.
    pub event: Event,
}

/// Returns the state `event` moves a conversation in state `from` to, or why it cannot.
pub fn transition(
    from: ConversationState,
    event: Event,
) -> Result<ConversationState, RefusedTransition> {
    use ConversationState as S;
    let to = match (from, event) {
        (S::Started, Event::Ask) => S::InProgress,
        (S::InProgress, Event::Recommend) => S::GeneratingRecommendations,
        (S::GeneratingRecommendations, Event::ProposalReady) => S::AwaitingUserApproval,
        (S::AwaitingUserApproval, Event::Apply) => S::Completed,
        (from, Event::Cancel) if from.is_active() => S::Cancelled,
        (from, Event::Fail) if from.is_active() => S::Error,
        _ => return Err(RefusedTransition { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConversationState as S;

    /// Every allowed move; every other (state, event) pair is refused.
    const ALLOWED: [(S, Event, S); 12] = [
        (S::Started, Event::Ask, S::InProgress),
        (
            S::InProgress,
            Event::Recommend,
            S::GeneratingRecommendations,
        ),
        (
            S::GeneratingRecommendations,
            Event::ProposalReady,
            S::AwaitingUserApproval,
        ),
        (S::AwaitingUserApproval, Event::Apply, S::Completed),
        (S::Started, Event::Cancel, S::Cancelled),
        (S::InProgress, Event::Cancel, S::Cancelled),
        (S::GeneratingRecommendations, Event::Cancel, S::Cancelled),
        (S::AwaitingUserApproval, Event::Cancel, S::Cancelled),
        (S::Started, Event::Fail, S::Error),
        (S::InProgress, Event::Fail, S::Error),
        (S::GeneratingRecommendations, Event::Fail, S::Error),
        (S::AwaitingUserApproval, Event::Fail, S::Error),
    ];

    #[test]
    fn allowed_moves_reach_their_state() {
        for (from, event, to) in ALLOWED {
            assert_eq!(transition(from, event), Ok(to), "{from:?} + {event:?}");
        }
    }

    #[test]
    fn every_other_move_is_refused() {
        let mut refused = 0;
        for from in S::ALL {
            for event in Event::ALL {
                let allowed = ALLOWED
                    .iter()
                    .any(|(state, allowed_event, _)| *state == from && *allowed_event == event);
                if allowed {
                    continue;
                }
                assert_eq!(
                    transition(from, event),
                    Err(RefusedTransition { from, event }),
                    "{from:?} + {event:?} should be refused"
                );
                refused += 1;
            }
        }
        assert_eq!(refused, 7 * 6 - ALLOWED.len());
    }

    #[test]
    fn terminal_states_refuse_everything() {
        for from in [S::Completed, S::Cancelled, S::Error] {
            for event in Event::ALL {
                assert!(transition(from, event).is_err(), "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in S::ALL {
            assert_eq!(S::parse(state.as_str()), Some(state));
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
        }
        assert_eq!(S::parse("paused"), None);
    }

    #[test]
    fn refusal_message_names_state_and_event() {
        let error = transition(S::Completed, Event::Cancel).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a conversation in state completed cannot take the event cancel"
        );
    }
}
