//! A composite alarm's state and reason. The state is ALARM when its rule
//! holds and OK otherwise (INSUFFICIENT_DATA only between creation and the
//! first evaluation, which the caller sets). The reason says what prompted the
//! evaluation, in CloudWatch's words:
//!
//! - `arn:...:alarm:Main was created and its alarm rule evaluates to OK`
//! - `arn:...:alarm:Main was updated and its new alarm rule evaluates to OK`
//! - `arn:...:alarm:Child transitioned to ALARM at Friday 22 July, 2022 15:57:45 UTC`
//!
//! and `StateReasonData` is `{"triggeringAlarms":[{"arn":...,"state":{"value":
//! "ALARM","timestamp":"2022-07-22T15:57:45.394+0000"}}]}`: the child that
//! changed, or on creation and update every child the rule names.

use super::rule::AlarmRule;
use super::state::{AlarmState, Outcome, StateUpdate};
use super::text::{composite_reason_time, data_time, json_string};
use std::fmt::Write;

/// A child alarm as the composite sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildAlarm {
    pub arn: String,
    pub state: AlarmState,
    /// When the child entered `state`, epoch milliseconds.
    pub state_timestamp_ms: i64,
}

/// What prompted a composite alarm's evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CompositeTrigger<'a> {
    /// PutCompositeAlarm created the alarm.
    Created,
    /// PutCompositeAlarm replaced the alarm's configuration.
    Updated,
    /// A child alarm changed state (given as it is now).
    ChildChanged(&'a ChildAlarm),
}

impl AlarmRule {
    /// The state the composite alarm at `composite_arn` belongs in, and why.
    /// `lookup` resolves an alarm as the rule names it (a name or an ARN) to the
    /// child; a child it cannot resolve is in no state.
    pub fn assess_composite(
        &self,
        composite_arn: &str,
        trigger: CompositeTrigger<'_>,
        lookup: &dyn Fn(&str) -> Option<ChildAlarm>,
    ) -> StateUpdate {
        let holds = self.evaluate(&|alarm: &str| lookup(alarm).map(|child| child.state));
        let state = if holds {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        let (reason, triggering) = match trigger {
            CompositeTrigger::Created => (
                format!("{composite_arn} was created and its alarm rule evaluates to {state}"),
                self.children(lookup),
            ),
            CompositeTrigger::Updated => (
                format!("{composite_arn} was updated and its new alarm rule evaluates to {state}"),
                self.children(lookup),
            ),
            CompositeTrigger::ChildChanged(child) => (
                format!(
                    "{} transitioned to {} at {}",
                    child.arn,
                    child.state,
                    composite_reason_time(child.state_timestamp_ms)
                ),
                vec![child.clone()],
            ),
        };
        StateUpdate {
            state,
            reason,
            reason_data: triggering_alarms(&triggering),
        }
    }

    /// [`assess_composite`](Self::assess_composite), compared with the
    /// composite alarm's current state.
    pub fn evaluate_composite(
        &self,
        composite_arn: &str,
        current: AlarmState,
        trigger: CompositeTrigger<'_>,
        lookup: &dyn Fn(&str) -> Option<ChildAlarm>,
    ) -> Outcome {
        Outcome::from_update(
            current,
            Some(self.assess_composite(composite_arn, trigger, lookup)),
        )
    }

    /// Every child the rule names that `lookup` knows, once each, in rule order.
    fn children(&self, lookup: &dyn Fn(&str) -> Option<ChildAlarm>) -> Vec<ChildAlarm> {
        let mut children: Vec<ChildAlarm> = Vec::new();
        for child in self.alarms().iter().filter_map(|alarm| lookup(alarm)) {
            // A rule may name one alarm both by name and by ARN.
            if !children.iter().any(|known| known.arn == child.arn) {
                children.push(child);
            }
        }
        children
    }
}

fn triggering_alarms(children: &[ChildAlarm]) -> String {
    let mut out = String::from("{\"triggeringAlarms\":[");
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"arn\":{},\"state\":{{\"value\":\"{}\",\"timestamp\":\"{}\"}}}}",
            json_string(&child.arn),
            child.state,
            data_time(child.state_timestamp_ms)
        );
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PREFIX: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:";

    fn child(name: &str, state: AlarmState, ms: i64) -> ChildAlarm {
        ChildAlarm {
            arn: format!("{PREFIX}{name}"),
            state,
            state_timestamp_ms: ms,
        }
    }

    /// A lookup over `children` that answers to a name or an ARN.
    fn lookup_in(children: &[ChildAlarm]) -> impl Fn(&str) -> Option<ChildAlarm> + '_ {
        let by_name: HashMap<String, ChildAlarm> = children
            .iter()
            .flat_map(|c| {
                let name = c.arn.trim_start_matches(PREFIX).to_string();
                [(name, c.clone()), (c.arn.clone(), c.clone())]
            })
            .collect();
        move |alarm: &str| by_name.get(alarm).cloned()
    }

    const MAIN: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm";

    #[test]
    fn a_child_transition_names_the_child_and_its_time() {
        let rule = AlarmRule::parse("ALARM(ServerCpuTooHigh) OR ALARM(TotalNetworkTrafficTooHigh)")
            .expect("valid rule");
        // 2022-07-22T15:57:45.394Z, the user guide's EventBridge example.
        let cpu = child("ServerCpuTooHigh", AlarmState::Alarm, 1_658_505_465_394);
        let net = child(
            "TotalNetworkTrafficTooHigh",
            AlarmState::Ok,
            1_657_816_137_770,
        );
        let children = [cpu.clone(), net];
        let lookup = lookup_in(&children);
        let outcome = rule.evaluate_composite(
            MAIN,
            AlarmState::Ok,
            CompositeTrigger::ChildChanged(&cpu),
            &lookup,
        );
        assert_eq!(
            outcome,
            Outcome::Transition(StateUpdate {
                state: AlarmState::Alarm,
                reason: "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh transitioned to ALARM at Friday 22 July, 2022 15:57:45 UTC".into(),
                reason_data: "{\"triggeringAlarms\":[{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh\",\"state\":{\"value\":\"ALARM\",\"timestamp\":\"2022-07-22T15:57:45.394+0000\"}}]}".into(),
            })
        );
        // Already in ALARM: nothing to change.
        assert_eq!(
            rule.evaluate_composite(
                MAIN,
                AlarmState::Alarm,
                CompositeTrigger::ChildChanged(&cpu),
                &lookup
            ),
            Outcome::NoChange
        );
    }

    #[test]
    fn creation_lists_every_child() {
        let rule = AlarmRule::parse(
            "ALARM(ServerCpuTooHigh) OR ALARM(\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:TotalNetworkTrafficTooHigh\") OR ALARM(ServerCpuTooHigh)",
        )
        .expect("valid rule");
        let children = [
            child("ServerCpuTooHigh", AlarmState::Ok, 1_657_816_134_191),
            child(
                "TotalNetworkTrafficTooHigh",
                AlarmState::Ok,
                1_657_816_137_770,
            ),
        ];
        let update = rule.assess_composite(MAIN, CompositeTrigger::Created, &lookup_in(&children));
        assert_eq!(update.state, AlarmState::Ok);
        assert_eq!(
            update.reason,
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServiceAggregatedAlarm was created and its alarm rule evaluates to OK"
        );
        assert_eq!(
            update.reason_data,
            "{\"triggeringAlarms\":[{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh\",\"state\":{\"value\":\"OK\",\"timestamp\":\"2022-07-14T16:28:54.191+0000\"}},{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:TotalNetworkTrafficTooHigh\",\"state\":{\"value\":\"OK\",\"timestamp\":\"2022-07-14T16:28:57.770+0000\"}}]}"
        );
        // From INSUFFICIENT_DATA (a new composite) that is a transition.
        assert!(matches!(
            rule.evaluate_composite(
                MAIN,
                AlarmState::InsufficientData,
                CompositeTrigger::Created,
                &lookup_in(&children)
            ),
            Outcome::Transition(StateUpdate {
                state: AlarmState::Ok,
                ..
            })
        ));
    }

    #[test]
    fn an_update_says_new_alarm_rule() {
        let rule = AlarmRule::parse("ALARM(a) AND NOT OK(b)").expect("valid rule");
        let children = [
            child("a", AlarmState::Alarm, 1_000),
            child("b", AlarmState::InsufficientData, 2_000),
        ];
        let update = rule.assess_composite(MAIN, CompositeTrigger::Updated, &lookup_in(&children));
        assert_eq!(update.state, AlarmState::Alarm);
        assert_eq!(
            update.reason,
            format!("{MAIN} was updated and its new alarm rule evaluates to ALARM")
        );
        assert_eq!(
            update.reason_data,
            "{\"triggeringAlarms\":[{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:a\",\"state\":{\"value\":\"ALARM\",\"timestamp\":\"1970-01-01T00:00:01.000+0000\"}},{\"arn\":\"arn:aws:cloudwatch:us-east-1:123456789012:alarm:b\",\"state\":{\"value\":\"INSUFFICIENT_DATA\",\"timestamp\":\"1970-01-01T00:00:02.000+0000\"}}]}"
        );
    }

    #[test]
    fn an_unknown_child_is_in_no_state() {
        let rule =
            AlarmRule::parse("NOT ALARM(gone) AND NOT OK(gone) AND NOT INSUFFICIENT_DATA(gone)")
                .expect("valid rule");
        let update = rule.assess_composite(MAIN, CompositeTrigger::Created, &|_: &str| None);
        assert_eq!(update.state, AlarmState::Alarm);
        assert_eq!(update.reason_data, "{\"triggeringAlarms\":[]}");
    }

    #[test]
    fn true_and_false_rules_need_no_children() {
        for (text, state) in [("TRUE", AlarmState::Alarm), ("FALSE", AlarmState::Ok)] {
            let rule = AlarmRule::parse(text).expect("valid rule");
            let update = rule.assess_composite(MAIN, CompositeTrigger::Created, &|_: &str| None);
            assert_eq!(update.state, state);
            assert_eq!(
                update.reason,
                format!("{MAIN} was created and its alarm rule evaluates to {state}")
            );
        }
    }

    #[test]
    fn an_ok_transition_of_a_child_can_clear_the_composite() {
        let rule = AlarmRule::parse("ALARM(a) OR ALARM(b)").expect("valid rule");
        let a = child("a", AlarmState::Ok, 1_667_162_855_671);
        let children = [a.clone(), child("b", AlarmState::Ok, 0)];
        let outcome = rule.evaluate_composite(
            MAIN,
            AlarmState::Alarm,
            CompositeTrigger::ChildChanged(&a),
            &lookup_in(&children),
        );
        assert_eq!(
            outcome,
            Outcome::Transition(StateUpdate {
                state: AlarmState::Ok,
                reason: format!("{PREFIX}a transitioned to OK at Sunday 30 October, 2022 20:47:35 UTC"),
                reason_data: format!("{{\"triggeringAlarms\":[{{\"arn\":\"{PREFIX}a\",\"state\":{{\"value\":\"OK\",\"timestamp\":\"2022-10-30T20:47:35.671+0000\"}}}}]}}"),
            })
        );
    }
}
