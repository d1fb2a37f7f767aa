//! The three states every CloudWatch alarm, metric or composite, is in, and
//! their names on the wire.

use std::fmt;

/// An alarm's state value (`StateValue` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// The wire name: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// The state a wire name stands for; `None` for anything else (the names
    /// are case-sensitive in the API).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an evaluation sets on the alarm: its state and the two reason fields
/// (`StateReason`, and `StateReasonData`, itself a JSON document in a string).
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    pub state: AlarmState,
    pub reason: String,
    pub reason_data: String,
}

/// The result of evaluating an alarm against its current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The alarm keeps its state and reason: either the data calls for the state
    /// it is already in, or the data cannot decide (missing data treated as
    /// `ignore`, too few samples for a percentile set to `ignore`).
    NoChange,
    /// The alarm moves to another state, for the reason given.
    Transition(StateUpdate),
}

impl Outcome {
    /// `Transition` when `update` names a state other than `current`.
    pub(crate) fn from_update(current: AlarmState, update: Option<StateUpdate>) -> Self {
        match update {
            Some(update) if update.state != current => Outcome::Transition(update),
            _ => Outcome::NoChange,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ] {
            assert_eq!(AlarmState::parse(state.as_str()), Some(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(AlarmState::parse("ok"), None);
        assert_eq!(AlarmState::parse("Alarm"), None);
    }
}
