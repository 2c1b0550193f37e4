use serde_json::json;

use super::*;

fn chunk(id: Uuid) -> RetrievedChunk {
    RetrievedChunk {
        chunk_id: id,
        document_id: Uuid::new_v4(),
        document_title: "29 CFR 1910.37".to_string(),
        source: Some("ecfr-29cfr-1910.37.txt".to_string()),
        authority: Authority::Official,
        text: "Exit routes must be free and unobstructed.".to_string(),
        age_days: Some(3.0),
        similarity: 0.4,
        flagged: false,
    }
}

fn maker_json(citation: Uuid, confidence: f64) -> Value {
    json!({"items": [{
        "operation": {
            "kind": "zone",
            "action": "create",
            "key": {"site_code": "S-1", "code": "LOBBY"},
            "fields": {"name": "Lobby", "kind": "lobby", "importance": 3, "risk_level": "medium"}
        },
        "rationale": "The user named the lobby.",
        "confidence": confidence,
        "citations": [citation]
    }]})
}

#[test]
fn maker_output_parses() {
    let id = Uuid::new_v4();
    let output = parse_maker_output(&maker_json(id, 0.8), &[chunk(id)]).unwrap();
    assert_eq!(output.items.len(), 1);
    assert_eq!(output.items[0].citations, vec![id]);
}

#[test]
fn maker_output_rejects_unknown_field() {
    let id = Uuid::new_v4();
    let mut value = maker_json(id, 0.8);
    value["items"][0]["risk"] = json!("none");
    let errors = parse_maker_output(&value, &[chunk(id)]).unwrap_err();
    assert!(errors[0].contains("unknown field `risk`"), "{errors:?}");
}

#[test]
fn maker_output_rejects_out_of_range_confidence() {
    let id = Uuid::new_v4();
    let errors = parse_maker_output(&maker_json(id, 1.5), &[chunk(id)]).unwrap_err();
    assert!(
        errors[0].contains("items[0].confidence is 1.5"),
        "{errors:?}"
    );
}

#[test]
fn maker_output_rejects_citation_not_retrieved() {
    let retrieved = Uuid::new_v4();
    let invented = Uuid::new_v4();
    let errors = parse_maker_output(&maker_json(invented, 0.8), &[chunk(retrieved)]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains(&invented.to_string()), "{errors:?}");
}

#[test]
fn maker_output_rejects_empty_and_repeated() {
    let errors = parse_maker_output(&json!({"items": []}), &[]).unwrap_err();
    assert!(errors[0].contains("items is empty"), "{errors:?}");

    let id = Uuid::new_v4();
    let mut value = maker_json(id, 0.8);
    value["items"][0]["citations"] = json!([id, id]);
    let errors = parse_maker_output(&value, &[chunk(id)]).unwrap_err();
    assert!(errors[0].contains("repeats a chunk id"), "{errors:?}");
}

fn checker_json(adjustment: f64) -> Value {
    json!({"valid": true, "operations": [
        {"index": 0, "valid": true, "citations": [], "findings": [
            {"category": "compliance", "passed": true, "message": "cited requirement matches"}
        ], "adjustment": adjustment},
        {"index": 1, "valid": false, "errors": ["zone does not exist"], "adjustment": -0.5}
    ]})
}

#[test]
fn checker_output_parses() {
    let output = parse_checker_output(&checker_json(0.1), 2).unwrap();
    assert_eq!(output.operations.len(), 2);
    assert_eq!(
        output.operation(1).map(|checked| checked.valid),
        Some(false)
    );
    assert!((output.mean_adjustment() - (-0.2)).abs() < 1e-9);
}

#[test]
fn checker_output_rejects_adjustment_out_of_range() {
    let errors = parse_checker_output(&checker_json(0.3), 2).unwrap_err();
    assert!(
        errors[0].contains("operations[0].adjustment is 0.3"),
        "{errors:?}"
    );
}

#[test]
fn checker_output_needs_one_verdict_per_item() {
    let errors = parse_checker_output(&checker_json(0.1), 3).unwrap_err();
    assert_eq!(
        errors,
        vec!["operations has no verdict for index 2".to_string()]
    );
    let errors = parse_checker_output(&checker_json(0.1), 1).unwrap_err();
    assert!(errors[0].contains("index 1"), "{errors:?}");
}

#[test]
fn checker_output_rejects_invalid_without_errors() {
    let mut value = checker_json(0.1);
    value["operations"][1]["errors"] = json!([]);
    let errors = parse_checker_output(&value, 2).unwrap_err();
    assert!(errors[0].contains("lists no errors"), "{errors:?}");
}
