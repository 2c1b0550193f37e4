//! Risk score and approval tier, computed by rules only: model output never sets them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Action, Operation};
use crate::facility::Kind;

/// The approvals a change set needs before it may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Risk under 0.3: the requester may apply it.
    #[serde(rename = "self")]
    SelfApply,
    /// Risk 0.3-0.7: one approver who is not the requester.
    OneApprover,
    /// Risk over 0.7 or more than 10 operations: two distinct approvers, neither the requester.
    TwoApprovers,
}

impl Tier {
    /// Returns the stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::SelfApply => "self",
            Tier::OneApprover => "one_approver",
            Tier::TwoApprovers => "two_approvers",
        }
    }

    /// Parses a stored tier name.
    pub fn parse(name: &str) -> Option<Self> {
        [Tier::SelfApply, Tier::OneApprover, Tier::TwoApprovers]
            .into_iter()
            .find(|tier| tier.as_str() == name)
    }

    /// Returns the approvals needed, not counting the requester.
    pub fn approvals_needed(self) -> usize {
        match self {
            Tier::SelfApply => 0,
            Tier::OneApprover => 1,
            Tier::TwoApprovers => 2,
        }
    }
}

/// The risk of a change set with the reasons behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assessment {
    /// 0.0-1.0, rounded to three decimals.
    pub risk_score: f64,
    /// Approvals required.
    pub tier: Tier,
    /// A sentence such as "two approvals needed: 14 operations".
    pub explanation: String,
}

/// Risk of one operation: create 0.05, update 0.2, delete 0.3, any security-settings change 0.4,
/// and turning GPS or sleeping-guard detection off 0.6.
pub fn operation_risk(operation: &Operation, before: Option<&Value>) -> f64 {
    let base: f64 = match operation.action {
        Action::Create => 0.05,
        Action::Update => 0.2,
        Action::Delete => 0.3,
    };
    if operation.kind != Kind::SecuritySettings {
        return base;
    }
    let was_on = |field: &str| {
        before
            .and_then(|row| row.get(field))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    };
    let turned_off = |field: &str| {
        let off = match operation.action {
            Action::Delete => true,
            _ => operation.fields.get(field).and_then(Value::as_bool) == Some(false),
        };
        off && was_on(field)
    };
    if turned_off("gps_enabled") || turned_off("sleeping_guard_detection") {
        0.6
    } else {
        base.max(0.4)
    }
}

/// Scores a change set: the highest operation risk, plus 0.2 above 5 operations, 0.3 above 10
/// and 0.4 above 20, plus up to 0.3 for low maker confidence (0.3 x (1 - confidence)), capped at
/// 1.0. The tier follows from the score and the operation count.
pub fn assess(operation_risks: &[f64], min_confidence: Option<f64>) -> Assessment {
    let count = operation_risks.len();
    let highest = operation_risks.iter().copied().fold(0.0_f64, f64::max);
    let size = match count {
        0..=5 => 0.0,
        6..=10 => 0.2,
        11..=20 => 0.3,
        _ => 0.4,
    };
    let confidence = min_confidence
        .map(|confidence| 0.3 * (1.0 - confidence.clamp(0.0, 1.0)))
        .unwrap_or(0.0);
    let risk_score = ((highest + size + confidence).min(1.0) * 1000.0).round() / 1000.0;

    let (tier, explanation) = if count > 10 {
        (
            Tier::TwoApprovers,
            format!("two approvals needed: {count} operations (more than 10)"),
        )
    } else if risk_score > 0.7 {
        (
            Tier::TwoApprovers,
            format!("two approvals needed: risk {risk_score:.2} is above 0.7"),
        )
    } else if risk_score >= 0.3 {
        (
            Tier::OneApprover,
            format!("one approval needed: risk {risk_score:.2} is between 0.3 and 0.7"),
        )
    } else {
        (
            Tier::SelfApply,
            format!("no approval needed: risk {risk_score:.2} is under 0.3"),
        )
    };
    Assessment {
        risk_score,
        tier,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: Kind, action: Action, fields: Value) -> Operation {
        Operation {
            kind,
            action,
            key: serde_json::Map::new(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn operation_risks() {
        let create = op(Kind::Zone, Action::Create, json!({}));
        let update = op(Kind::Zone, Action::Update, json!({}));
        let delete = op(Kind::Asset, Action::Delete, json!({}));
        let settings = op(
            Kind::SecuritySettings,
            Action::Update,
            json!({"permissible_distance_m": 80}),
        );
        let gps_off = op(
            Kind::SecuritySettings,
            Action::Update,
            json!({"gps_enabled": false}),
        );
        let on_before = json!({"gps_enabled": true, "sleeping_guard_detection": true});
        let off_before = json!({"gps_enabled": false, "sleeping_guard_detection": true});
        assert_eq!(operation_risk(&create, None), 0.05);
        assert_eq!(operation_risk(&update, None), 0.2);
        assert_eq!(operation_risk(&delete, None), 0.3);
        assert_eq!(operation_risk(&settings, Some(&on_before)), 0.4);
        assert_eq!(operation_risk(&gps_off, Some(&on_before)), 0.6);
        assert_eq!(
            operation_risk(&gps_off, Some(&off_before)),
            0.4,
            "already off is not turning off"
        );
    }

    /// Name, operation risks, min confidence, expected score, expected tier.
    type Case = (&'static str, Vec<f64>, Option<f64>, f64, Tier);

    #[test]
    fn assessment_table() {
        let cases: Vec<Case> = vec![
            ("one create", vec![0.05], None, 0.05, Tier::SelfApply),
            ("five creates", vec![0.05; 5], None, 0.05, Tier::SelfApply),
            ("six creates", vec![0.05; 6], None, 0.25, Tier::SelfApply),
            ("one update", vec![0.2], None, 0.2, Tier::SelfApply),
            ("one delete", vec![0.3], None, 0.3, Tier::OneApprover),
            ("security setting", vec![0.4], None, 0.4, Tier::OneApprover),
            ("gps off", vec![0.6], None, 0.6, Tier::OneApprover),
            (
                "gps off and 6 ops",
                vec![0.6, 0.05, 0.05, 0.05, 0.05, 0.05],
                None,
                0.8,
                Tier::TwoApprovers,
            ),
            (
                "eleven creates",
                vec![0.05; 11],
                None,
                0.35,
                Tier::TwoApprovers,
            ),
            ("ten creates", vec![0.05; 10], None, 0.25, Tier::SelfApply),
            (
                "twenty-one creates",
                vec![0.05; 21],
                None,
                0.45,
                Tier::TwoApprovers,
            ),
            (
                "low confidence",
                vec![0.05],
                Some(0.2),
                0.29,
                Tier::SelfApply,
            ),
            (
                "very low confidence",
                vec![0.2],
                Some(0.0),
                0.5,
                Tier::OneApprover,
            ),
            ("capped", vec![0.6; 25], Some(0.0), 1.0, Tier::TwoApprovers),
            (
                "full confidence",
                vec![0.2],
                Some(1.0),
                0.2,
                Tier::SelfApply,
            ),
        ];
        for (name, risks, confidence, score, tier) in cases {
            let assessment = assess(&risks, confidence);
            assert!(
                (assessment.risk_score - score).abs() < 1e-9,
                "{name}: score {} != {score}",
                assessment.risk_score
            );
            assert_eq!(assessment.tier, tier, "{name}");
        }
    }

    #[test]
    fn explanation_names_the_reason() {
        let many = assess(&[0.05; 14], None);
        assert_eq!(
            many.explanation,
            "two approvals needed: 14 operations (more than 10)"
        );
        let one = assess(&[0.4], None);
        assert!(
            one.explanation.starts_with("one approval needed"),
            "{}",
            one.explanation
        );
    }
}
