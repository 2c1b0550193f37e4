//! Strict validation of model output, and the one repair attempt that follows a failure.
//!
//! Output types derive `Deserialize` with `#[serde(deny_unknown_fields)]`, so an extra field is
//! an error, and implement [`Validate`] for the rules a type cannot state (ranges, allowed
//! values, lengths). [`with_repair`] sends a request, validates the output and, on failure, sends
//! the request once more with the validation errors appended to the conversation.

use std::fmt::Display;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ChatMessage, ChatRequest, ChatResponse, Provider, ProviderError, Role};

/// Maximum number of validation errors listed in a repair request or an error message. More
/// rarely help, because the rest are often repeats of the first ones.
pub const MAX_LISTED_ERRORS: usize = 20;

/// Rules on a parsed output that its type cannot express.
pub trait Validate {
    /// Adds one message per broken rule to `errors`; none means the value is valid.
    fn validate(&self, errors: &mut Violations);
}

/// Collected validation errors, each naming the field path, the value and the rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<String>);

impl Violations {
    /// Creates an empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a message.
    pub fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    /// Adds an error when `value` is outside `[min, max]`, or is NaN.
    pub fn range<T: PartialOrd + Display>(&mut self, path: &str, value: T, min: T, max: T) {
        let inside = value >= min && value <= max;
        if !inside {
            self.push(format!(
                "{path} is {value}, outside the allowed range [{min}, {max}]"
            ));
        }
    }

    /// Adds an error when `value` is not one of `allowed`.
    pub fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(format!(
                "{path} is {value:?}, which is not one of: {}",
                allowed.join(", ")
            ));
        }
    }

    /// Adds an error when `value` is empty or longer than `max_chars` characters.
    pub fn text(&mut self, path: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.push(format!("{path} is empty"));
        } else if value.chars().count() > max_chars {
            self.push(format!("{path} is longer than {max_chars} characters"));
        }
    }

    /// Returns whether no error was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the messages.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Deserializes `value` into `T`. On failure it returns one message naming the field path,
/// such as `operations[2].confidence: invalid type: string "high", expected f64`.
pub fn parse_strict<T: DeserializeOwned>(value: &Value) -> Result<T, Vec<String>> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            vec![inner.to_string()]
        } else {
            vec![format!("{path}: {inner}")]
        }
    })
}

/// Deserializes `value` into `T` and then applies `T`'s [`Validate`] rules.
pub fn parse_validated<T: DeserializeOwned + Validate>(value: &Value) -> Result<T, Vec<String>> {
    let parsed: T = parse_strict(value)?;
    let mut errors = Violations::new();
    parsed.validate(&mut errors);
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors.into_vec())
    }
}

/// A validated output and the calls that produced it, one or two, for the call records.
#[derive(Debug, Clone)]
pub struct Validated<T> {
    /// The parsed, valid output.
    pub output: T,
    /// Every call made, first call first; two when a repair was needed.
    pub responses: Vec<ChatResponse>,
}

/// Sends `request` and parses the output with `parse`, such as [`parse_validated`]. When the
/// model's output is not JSON or `parse` rejects it, it sends one repair request and gives up
/// after that with [`ProviderError::MalformedOutput`] (class `model_provider`). Other provider
/// errors return at once, because the job's retry handles them.
pub async fn with_repair<T, F>(
    provider: &dyn Provider,
    request: &ChatRequest,
    parse: F,
) -> Result<Validated<T>, ProviderError>
where
    F: Fn(&Value) -> Result<T, Vec<String>>,
{
    let mut responses = Vec::new();
    let (previous_output, errors) = match provider.chat_structured(request).await {
        Ok(response) => match parse(&response.value) {
            Ok(output) => {
                responses.push(response);
                return Ok(Validated { output, responses });
            }
            Err(errors) => {
                let output = response.value.to_string();
                responses.push(response);
                (Some(output), errors)
            }
        },
        Err(ProviderError::MalformedOutput { detail, output, .. }) => (output, vec![detail]),
        Err(error) => return Err(error),
    };

    tracing::warn!(
        provider = %provider.kind(),
        model = provider.chat_model(),
        schema = %request.schema_name,
        error_count = errors.len(),
        first_error = errors.first().map(String::as_str).unwrap_or(""),
        "model output failed validation; sending one repair request"
    );
    let repair = repair_request(request, previous_output, &errors);
    let second_errors = match provider.chat_structured(&repair).await {
        Ok(response) => match parse(&response.value) {
            Ok(output) => {
                responses.push(response);
                return Ok(Validated { output, responses });
            }
            Err(errors) => errors,
        },
        Err(ProviderError::MalformedOutput { detail, .. }) => vec![detail],
        Err(error) => return Err(error),
    };

    tracing::warn!(
        provider = %provider.kind(),
        model = provider.chat_model(),
        schema = %request.schema_name,
        error_count = second_errors.len(),
        "model output failed validation after the repair request; giving up"
    );
    Err(ProviderError::MalformedOutput {
        origin: format!("{} model {}", provider.kind(), provider.chat_model()),
        detail: format!(
            "it failed validation against schema {:?} after one repair attempt: {}",
            request.schema_name,
            list_errors(&second_errors, "; ")
        ),
        output: None,
    })
}

/// Builds the repair request: the original conversation, the invalid output as an assistant
/// turn when there was one, and a user turn that lists the validation errors.
pub fn repair_request(
    request: &ChatRequest,
    previous_output: Option<String>,
    errors: &[String],
) -> ChatRequest {
    let note = format!(
        "Your previous output was invalid. It does not match the {} schema:\n{}\n\nReturn the \
         complete corrected output as one JSON value that matches the schema, and nothing else.",
        request.schema_name,
        list_errors(errors, "\n")
    );
    let mut repair = request.clone();
    match previous_output {
        Some(output) => {
            repair.messages.push(ChatMessage::assistant(output));
            repair.messages.push(ChatMessage::user(note));
        }
        // Without an output to show, the note joins the last user turn, because Anthropic
        // expects user and assistant turns to alternate.
        None => match repair.messages.last_mut() {
            Some(last) if last.role == Role::User => {
                last.content.push_str("\n\n");
                last.content.push_str(&note);
            }
            _ => repair.messages.push(ChatMessage::user(note)),
        },
    }
    repair
}

/// Formats at most [`MAX_LISTED_ERRORS`] errors as `- error` items joined by `separator`.
pub(crate) fn list_errors(errors: &[String], separator: &str) -> String {
    let mut items: Vec<String> = errors
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|error| format!("- {error}"))
        .collect();
    if errors.len() > MAX_LISTED_ERRORS {
        items.push(format!(
            "- and {} more errors",
            errors.len() - MAX_LISTED_ERRORS
        ));
    }
    items.join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Zone {
        code: String,
        risk_level: String,
        confidence: f64,
    }

    impl Validate for Zone {
        fn validate(&self, errors: &mut Violations) {
            errors.text("code", &self.code, 32);
            errors.one_of("risk_level", &self.risk_level, &["low", "medium", "high"]);
            errors.range("confidence", self.confidence, 0.0, 1.0);
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Proposal {
        zones: Vec<Zone>,
    }

    impl Validate for Proposal {
        fn validate(&self, errors: &mut Violations) {
            for zone in &self.zones {
                zone.validate(errors);
            }
        }
    }

    #[test]
    fn strict_parse_names_path_of_unknown_field() {
        let value =
            json!({"zones": [{"code": "A", "risk_level": "low", "confidence": 0.5, "x": 1}]});
        let errors = parse_strict::<Proposal>(&value).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("zones[0]"), "{errors:?}");
        assert!(errors[0].contains("unknown field `x`"), "{errors:?}");
    }

    #[test]
    fn strict_parse_names_wrong_type() {
        let value = json!({"zones": [{"code": "A", "risk_level": "low", "confidence": "high"}]});
        let errors = parse_strict::<Proposal>(&value).unwrap_err();
        assert!(errors[0].starts_with("zones[0].confidence"), "{errors:?}");
    }

    #[test]
    fn validated_parse_lists_every_rule() {
        let value = json!({"zones": [{"code": "", "risk_level": "extreme", "confidence": 1.5}]});
        let errors = parse_validated::<Proposal>(&value).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e == "code is empty"));
        assert!(errors
            .iter()
            .any(|e| e.contains("\"extreme\", which is not one of: low, medium, high")));
        assert!(errors
            .iter()
            .any(|e| e.contains("confidence is 1.5, outside the allowed range [0, 1]")));
    }

    #[test]
    fn validated_parse_accepts_valid() {
        let value = json!({"zones": [{"code": "GATE", "risk_level": "high", "confidence": 0.9}]});
        let proposal = parse_validated::<Proposal>(&value).unwrap();
        assert_eq!(proposal.zones[0].code, "GATE");
    }

    #[test]
    fn repair_request_appends_output_and_errors() {
        let request = ChatRequest::new("sys", "go", "out", json!({"type": "object"}));
        let repair = repair_request(
            &request,
            Some("{\"zones\": 1}".to_string()),
            &["zones: invalid type".to_string()],
        );
        assert_eq!(repair.messages.len(), 3);
        assert_eq!(repair.messages[1].role, Role::Assistant);
        assert_eq!(repair.messages[1].content, "{\"zones\": 1}");
        assert_eq!(repair.messages[2].role, Role::User);
        assert!(repair.messages[2]
            .content
            .contains("Your previous output was invalid"));
        assert!(repair.messages[2].content.contains("- zones: invalid type"));
    }

    #[test]
    fn repair_without_output_extends_last_user_turn() {
        let request = ChatRequest::new("sys", "go", "out", json!({"type": "object"}));
        let repair = repair_request(&request, None, &["not JSON".to_string()]);
        assert_eq!(repair.messages.len(), 1);
        assert!(repair.messages[0].content.starts_with("go\n\n"));
        assert!(repair.messages[0].content.contains("- not JSON"));
    }

    #[test]
    fn error_list_is_capped() {
        let errors: Vec<String> = (0..25).map(|i| format!("error {i}")).collect();
        let listed = list_errors(&errors, "\n");
        assert_eq!(listed.lines().count(), MAX_LISTED_ERRORS + 1);
        assert!(listed.ends_with("- and 5 more errors"));
    }
}
