use serde_json::{json, Map};

use super::*;
use crate::changes::Action;
use crate::recommendations::{CheckedOperation, CitationCheck, ProposalItem};

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

fn chunk(authority: Authority, age_days: Option<f64>) -> RetrievedChunk {
    RetrievedChunk {
        chunk_id: Uuid::new_v4(),
        document_id: Uuid::new_v4(),
        document_title: "29 CFR 1910.165".to_string(),
        source: None,
        authority,
        text: "text".to_string(),
        age_days,
        similarity: 0.5,
        flagged: false,
    }
}

fn object(value: serde_json::Value) -> Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap()
}

fn item(
    kind: Kind,
    key: serde_json::Value,
    fields: serde_json::Value,
    confidence: f64,
    citations: &[Uuid],
) -> ProposalItem {
    ProposalItem {
        operation: Operation {
            kind,
            action: Action::Create,
            key: object(key),
            fields: object(fields),
        },
        rationale: "because".to_string(),
        confidence,
        citations: citations.to_vec(),
    }
}

fn zone(code: &str, confidence: f64, citations: &[Uuid]) -> ProposalItem {
    item(
        Kind::Zone,
        json!({"site_code": "S-1", "code": code}),
        json!({"name": code}),
        confidence,
        citations,
    )
}

fn verdict(index: usize, valid: bool, adjustment: f64) -> CheckedOperation {
    CheckedOperation {
        index,
        valid,
        errors: if valid {
            vec![]
        } else {
            vec!["invalid".to_string()]
        },
        citations: vec![],
        findings: vec![],
        adjustment,
    }
}

fn compliance(passed: bool) -> Finding {
    Finding {
        category: FindingCategory::Compliance,
        passed,
        message: "checked".to_string(),
    }
}

fn run(
    maker: &MakerOutput,
    checker: Option<&CheckerOutput>,
    chunks: &[RetrievedChunk],
) -> Consensus {
    decide(maker, checker, chunks, &ConsensusSettings::default())
}

#[test]
fn coverage_uses_best_citation_per_operation() {
    let official = chunk(Authority::Official, Some(10.0));
    let low = chunk(Authority::Low, Some(10.0));
    let high = chunk(Authority::High, Some(10.0));
    let maker = MakerOutput {
        items: vec![
            zone("A", 0.8, &[low.chunk_id, official.chunk_id]),
            zone("B", 0.8, &[]),
            zone("C", 0.8, &[high.chunk_id]),
            zone("D", 0.8, &[low.chunk_id]),
        ],
    };
    let result = run(&maker, None, &[official, low, high]);
    close(result.terms.coverage, (1.0 + 0.0 + 0.8 + 0.3) / 4.0);
}

#[test]
fn agreement_steps() {
    let checker = |valid: bool, adjustment: f64| CheckerOutput {
        valid,
        operations: vec![verdict(0, true, adjustment)],
    };
    close(agreement(None), 0.5);
    close(agreement(Some(&checker(false, 0.2))), 0.2);
    let cases = [
        (0.2, 0.9),
        (0.01, 0.9),
        (0.0, 0.7),
        (-0.09, 0.7),
        (-0.1, 0.4),
        (-0.29, 0.4),
        (-0.3, 0.1),
        (-0.5, 0.1),
    ];
    for (adjustment, expected) in cases {
        close(agreement(Some(&checker(true, adjustment))), expected);
    }
}

#[test]
fn agreement_uses_mean_adjustment() {
    let checker = CheckerOutput {
        valid: true,
        operations: vec![verdict(0, true, 0.2), verdict(1, true, -0.3)],
    };
    // The mean is -0.05, above -0.1.
    close(agreement(Some(&checker)), 0.7);
}

#[test]
fn freshness_is_mean_over_documents() {
    let recent = chunk(Authority::Official, Some(10.0));
    let mut same_document = chunk(Authority::Official, Some(10.0));
    same_document.document_id = recent.document_id;
    let older = chunk(Authority::Official, Some(200.0));
    let maker = MakerOutput {
        items: vec![
            zone("A", 0.8, &[recent.chunk_id, same_document.chunk_id]),
            zone("B", 0.8, &[older.chunk_id]),
        ],
    };
    let result = run(&maker, None, &[recent, same_document, older]);
    close(result.terms.freshness, (1.0 + 0.6) / 2.0);

    let undated = chunk(Authority::Official, None);
    let maker = MakerOutput {
        items: vec![zone("A", 0.8, &[undated.chunk_id])],
    };
    close(run(&maker, None, &[undated]).terms.freshness, 0.2);

    let maker = MakerOutput {
        items: vec![zone("A", 0.8, &[])],
    };
    close(run(&maker, None, &[]).terms.freshness, 0.0);
}

#[test]
fn policy_terms() {
    let official = chunk(Authority::Official, Some(1.0));
    let medium = chunk(Authority::Medium, Some(1.0));
    let with_findings = |findings: Vec<Finding>, cite: Uuid| {
        let maker = MakerOutput {
            items: vec![zone("A", 0.8, &[cite])],
        };
        let mut checked = verdict(0, true, 0.0);
        checked.findings = findings;
        let checker = CheckerOutput {
            valid: true,
            operations: vec![checked],
        };
        run(&maker, Some(&checker), &[official.clone(), medium.clone()])
            .terms
            .policy
    };
    close(with_findings(vec![], medium.chunk_id), 0.7);
    close(with_findings(vec![compliance(true)], medium.chunk_id), 0.9);
    close(with_findings(vec![], official.chunk_id), 0.9);
    close(
        with_findings(vec![compliance(true)], official.chunk_id),
        1.0,
    );
    close(with_findings(vec![compliance(false)], medium.chunk_id), 0.4);
    close(
        with_findings(vec![compliance(true), compliance(false)], official.chunk_id),
        0.6,
    );
}

#[test]
fn score_and_confidence_follow_weights() {
    let official = chunk(Authority::Official, Some(10.0));
    let maker = MakerOutput {
        items: vec![zone("A", 0.9, &[official.chunk_id]), zone("B", 0.7, &[])],
    };
    let result = run(&maker, None, &[official]);
    // coverage 0.5, agreement 0.5 (no checker), freshness 1.0, policy 0.7 + 0.2 official.
    close(result.terms.coverage, 0.5);
    close(result.terms.agreement, 0.5);
    close(result.terms.freshness, 1.0);
    close(result.terms.policy, 0.9);
    close(result.score, 0.3 * 0.5 + 0.4 * 0.5 + 0.1 * 1.0 + 0.2 * 0.9);
    close(result.maker_confidence, 0.8);
    close(result.confidence, (result.score + 0.8) / 2.0);
    // 0.715 confidence, but agreement 0.5 is under 0.6.
    assert_eq!(result.decision, Decision::Modify);
}

#[test]
fn decision_boundaries() {
    let settings = ConsensusSettings::default();
    let cases = [
        (0.7, 0.6, Decision::Approve),
        (0.95, 0.9, Decision::Approve),
        (0.7, 0.59, Decision::Modify),
        (0.6999, 0.9, Decision::Modify),
        (0.4, 0.1, Decision::Modify),
        (0.3999, 0.9, Decision::Escalate),
        (0.0, 0.0, Decision::Escalate),
    ];
    for (confidence, agreement, expected) in cases {
        assert_eq!(
            decision(confidence, agreement, &settings),
            expected,
            "confidence {confidence}, agreement {agreement}"
        );
    }
}

#[test]
fn approve_with_strong_checker() {
    let official = chunk(Authority::Official, Some(5.0));
    let maker = MakerOutput {
        items: vec![zone("A", 0.9, &[official.chunk_id])],
    };
    let mut checked = verdict(0, true, 0.1);
    checked.citations = vec![CitationCheck {
        chunk_id: official.chunk_id,
        supported: true,
    }];
    checked.findings = vec![compliance(true)];
    let checker = CheckerOutput {
        valid: true,
        operations: vec![checked],
    };
    let result = run(&maker, Some(&checker), &[official]);
    close(result.score, 0.3 + 0.4 * 0.9 + 0.1 + 0.2);
    assert_eq!(result.decision, Decision::Approve);
    close(result.items[0].confidence, 1.0);
}

#[test]
fn unsupported_and_unknown_citations_removed() {
    let kept = chunk(Authority::Official, Some(5.0));
    let rejected = chunk(Authority::Official, Some(5.0));
    let stranger = Uuid::new_v4();

    let maker = MakerOutput {
        items: vec![zone(
            "A",
            0.8,
            &[kept.chunk_id, rejected.chunk_id, stranger],
        )],
    };
    let mut checked = verdict(0, true, -0.15);
    checked.citations = vec![
        CitationCheck {
            chunk_id: kept.chunk_id,
            supported: true,
        },
        CitationCheck {
            chunk_id: rejected.chunk_id,
            supported: false,
        },
    ];
    let checker = CheckerOutput {
        valid: true,
        operations: vec![checked],
    };
    let result = run(&maker, Some(&checker), &[kept.clone(), rejected]);

    assert_eq!(result.items[0].citations, vec![kept.chunk_id]);
    assert_eq!(result.removed_unsupported, 1);
    assert_eq!(result.removed_unknown, 1);
    close(result.items[0].confidence, 0.65);
}

#[test]
fn invalid_operation_dropped() {
    let maker = MakerOutput {
        items: vec![
            item(Kind::Site, json!({"code": "S-1"}), json!({}), 0.9, &[]),
            zone("A", 0.8, &[]),
            item(
                Kind::Checkpoint,
                json!({"site_code": "S-1", "code": "CP-B"}),
                json!({"zone_code": "B"}),
                0.8,
                &[],
            ),
        ],
    };
    let checker = CheckerOutput {
        valid: false,
        operations: vec![
            verdict(0, true, 0.0),
            verdict(1, true, 0.0),
            verdict(2, false, -0.5),
        ],
    };
    let result = run(&maker, Some(&checker), &[]);
    assert_eq!(result.items.len(), 2);
    assert_eq!(result.dropped.len(), 1);
    assert_eq!(result.dropped[0].index, 2);
    assert_eq!(result.dropped[0].errors, vec!["invalid".to_string()]);
    assert!(result.escalation_reasons.is_empty());
    close(result.terms.agreement, 0.2);
}

#[test]
fn dropping_site_escalates() {
    let maker = MakerOutput {
        items: vec![
            item(Kind::Site, json!({"code": "S-1"}), json!({}), 0.9, &[]),
            zone("A", 0.9, &[]),
        ],
    };
    let checker = CheckerOutput {
        valid: false,
        operations: vec![verdict(0, false, -0.5), verdict(1, true, 0.2)],
    };
    let result = run(&maker, Some(&checker), &[]);
    assert_eq!(result.decision, Decision::Escalate);
    assert!(result.escalation_reasons[0].contains("site operation"));
}

#[test]
fn dropping_referenced_zone_escalates() {
    let maker = MakerOutput {
        items: vec![
            zone("GATE", 0.9, &[]),
            item(
                Kind::Asset,
                json!({"site_code": "S-1", "code": "CAM-1"}),
                json!({"zone_code": "GATE"}),
                0.9,
                &[],
            ),
        ],
    };
    let checker = CheckerOutput {
        valid: false,
        operations: vec![verdict(0, false, -0.5), verdict(1, true, 0.0)],
    };
    let result = run(&maker, Some(&checker), &[]);
    assert_eq!(result.decision, Decision::Escalate);
    assert!(result.escalation_reasons[0].contains("zone S-1/GATE"));
}

#[test]
fn nothing_valid_escalates() {
    let maker = MakerOutput {
        items: vec![zone("A", 0.9, &[])],
    };
    let checker = CheckerOutput {
        valid: false,
        operations: vec![verdict(0, false, -0.5)],
    };
    let result = run(&maker, Some(&checker), &[]);
    assert!(result.items.is_empty());
    assert_eq!(result.decision, Decision::Escalate);
    close(result.maker_confidence, 0.0);
}
