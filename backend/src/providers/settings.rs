//! Settings of the model providers: the fallback chain, each provider's connection, and the
//! breaker, rate-limit, budget and price numbers that the [`super::gateway::Gateway`] enforces.

use std::time::Duration;

use super::{AnthropicConfig, OpenAiConfig, ProviderKind};

/// Everything the gateway needs to build its providers and enforce its limits.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// Model providers in the order they are tried. `offline` is not listed: it always ends the
    /// chain. Empty means offline only.
    pub chain: Vec<ProviderKind>,
    /// The OpenAI-compatible provider; required when `chain` lists it.
    pub openai: Option<OpenAiConfig>,
    /// The Anthropic provider; required when `chain` lists it.
    pub anthropic: Option<AnthropicConfig>,
    /// Circuit breaker numbers, the same for every provider and tenant.
    pub breaker: BreakerSettings,
    /// Requests and tokens per minute allowed to each provider.
    pub rate_limits: RateLimits,
    /// Tokens (input plus output) each tenant may use per calendar month (UTC); 0 is unlimited.
    pub monthly_token_budget: u64,
    /// Prices per model, for the cost of each recorded call.
    pub prices: PriceTable,
}

/// Default of [`ProviderSettings::monthly_token_budget`].
pub const DEFAULT_MONTHLY_TOKEN_BUDGET: u64 = 2_000_000;

/// When a circuit breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures inside `failure_window` that open the breaker.
    pub failure_threshold: u32,
    /// The sliding window over which failures are counted.
    pub failure_window: Duration,
    /// How long the breaker stays open before it lets one probe through.
    pub open_for: Duration,
    /// After this long a half-open probe counts as lost (its process died) and another caller
    /// may probe. It must exceed the longest probe: two requests (the second a repair) at the
    /// request timeout.
    pub probe_lease: Duration,
}

impl Default for BreakerSettings {
    /// 3 failures in 5 minutes open the breaker for 60 s. A probe counts as lost after 5 minutes,
    /// which is longer than two requests at the default 120 s request timeout.
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            failure_window: Duration::from_secs(5 * 60),
            open_for: Duration::from_secs(60),
            probe_lease: Duration::from_secs(5 * 60),
        }
    }
}

/// Per-minute limits of one provider; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per minute.
    pub requests_per_minute: u32,
    /// Input plus output tokens per minute.
    pub tokens_per_minute: u64,
}

impl Default for RateLimits {
    /// Conservative numbers for a small deployment; set them to the provider account's limits.
    fn default() -> Self {
        Self {
            requests_per_minute: 60,
            tokens_per_minute: 100_000,
        }
    }
}

/// The price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Dollars per million input (prompt) tokens.
    pub input_per_million: f64,
    /// Dollars per million output (generated) tokens.
    pub output_per_million: f64,
}

/// Prices per model, parsed from `model=input/output,...`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    entries: Vec<(String, Price)>,
}

impl PriceTable {
    /// Parses `gpt-4o-mini=0.15/0.60,claude-3-5-haiku=0.80/4.00`: per model, dollars per million
    /// input and output tokens. An empty text gives an empty table.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, Price)> = Vec::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let invalid = |reason: &str| {
                format!(
                    "price entry {item:?} is invalid: {reason}; write model=input/output in \
                     dollars per million tokens, such as gpt-4o-mini=0.15/0.60"
                )
            };
            let (model, prices) = item
                .split_once('=')
                .ok_or_else(|| invalid("the '=' is missing"))?;
            let (input, output) = prices
                .split_once('/')
                .ok_or_else(|| invalid("the '/' between input and output price is missing"))?;
            let model = model.trim();
            if model.is_empty() {
                return Err(invalid("the model name is empty"));
            }
            if entries.iter().any(|(known, _)| known == model) {
                return Err(invalid("the model is listed twice"));
            }
            let number = |text: &str| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value >= 0.0)
                    .ok_or_else(|| invalid(&format!("{:?} is not a price >= 0", text.trim())))
            };
            let price = Price {
                input_per_million: number(input)?,
                output_per_million: number(output)?,
            };
            entries.push((model.to_string(), price));
        }
        Ok(Self { entries })
    }

    /// Returns the price of `model`: an exact entry, else the entry that `model` extends with
    /// a dash and a digit, as providers append a version date (`gpt-4o-mini-2024-07-18`).
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some((_, price)) = self.entries.iter().find(|(name, _)| name == model) {
            return Some(*price);
        }
        self.entries
            .iter()
            .filter(|(name, _)| {
                model.strip_prefix(name.as_str()).is_some_and(|rest| {
                    let mut chars = rest.chars();
                    chars.next() == Some('-') && chars.next().is_some_and(|c| c.is_ascii_digit())
                })
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }

    /// Returns the cost in dollars of a call, or `None` when `model` has no price.
    pub fn cost(&self, model: &str, input_tokens: u32, output_tokens: u32) -> Option<f64> {
        self.price(model).map(|price| {
            (f64::from(input_tokens) * price.input_per_million
                + f64::from(output_tokens) * price.output_per_million)
                / 1_000_000.0
        })
    }

    /// Returns whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses the fallback chain `openai,anthropic`. `offline` may end the list and is implied
/// when missing; `openai_compatible` is accepted for `openai`. Empty text means offline only.
pub fn parse_chain(text: &str) -> Result<Vec<ProviderKind>, String> {
    let mut chain = Vec::new();
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    for (position, name) in names.iter().enumerate() {
        let kind = match name.to_ascii_lowercase().as_str() {
            "openai" | "openai_compatible" => ProviderKind::OpenAiCompatible,
            "anthropic" => ProviderKind::Anthropic,
            "offline" if position + 1 == names.len() => break,
            "offline" => {
                return Err(format!(
                    "provider list {text:?} names providers after offline, which always answers; \
                     put offline last or leave it out"
                ))
            }
            _ => {
                return Err(format!(
                    "provider {name:?} in {text:?} is unknown; use openai, anthropic or offline, \
                     separated by commas"
                ))
            }
        };
        if chain.contains(&kind) {
            return Err(format!(
                "provider {name:?} appears twice in {text:?}; list each provider once"
            ));
        }
        chain.push(kind);
    }
    Ok(chain)
}

/// Parses a provider's base URL from settings; the provider checks the rest (scheme, no
/// credentials or query) when it is built.
pub fn parse_base_url(text: &str) -> Result<url::Url, String> {
    url::Url::parse(text.trim()).map_err(|error| {
        format!(
            "{text:?} is not a valid URL ({error}); write the API root with its scheme, such as \
             http://127.0.0.1:8080/v1"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_table_parses_and_costs() {
        let table = PriceTable::parse("gpt-4o-mini=0.15/0.60, claude-3-5-haiku=0.80/4.00").unwrap();
        let cost = table.cost("gpt-4o-mini", 1_000_000, 500_000).unwrap();
        assert!((cost - 0.45).abs() < 1e-9, "{cost}");
        let cost = table.cost("claude-3-5-haiku", 2_000, 1_000).unwrap();
        assert!((cost - 0.0056).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn price_matches_dated_model_only() {
        let table = PriceTable::parse("gpt-4o=2.5/10,gpt-4o-mini=0.15/0.6").unwrap();
        let dated = table.price("gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(dated.input_per_million, 0.15);
        let base = table.price("gpt-4o-2024-08-06").unwrap();
        assert_eq!(base.input_per_million, 2.5);
        assert_eq!(table.price("gpt-4o-audio"), None);
        assert_eq!(table.price("other"), None);
    }

    #[test]
    fn empty_price_text_is_empty_table() {
        assert!(PriceTable::parse("").unwrap().is_empty());
        assert!(PriceTable::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn invalid_price_entries_name_the_entry() {
        let cases = [
            ("gpt", "'=' is missing"),
            ("gpt=0.1", "'/' between"),
            ("=0.1/0.2", "model name is empty"),
            ("gpt=x/0.2", "\"x\" is not a price"),
            ("gpt=-1/0.2", "\"-1\" is not a price"),
            ("gpt=1/2,gpt=1/2", "listed twice"),
        ];
        for (text, expected) in cases {
            let error = PriceTable::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains("model=input/output"), "{text}: {error}");
        }
    }

    #[test]
    fn chain_parses_names_and_offline() {
        assert_eq!(parse_chain("").unwrap(), vec![]);
        assert_eq!(parse_chain("offline").unwrap(), vec![]);
        assert_eq!(
            parse_chain("openai, Anthropic,offline").unwrap(),
            vec![ProviderKind::OpenAiCompatible, ProviderKind::Anthropic]
        );
        assert_eq!(
            parse_chain("anthropic,openai_compatible").unwrap(),
            vec![ProviderKind::Anthropic, ProviderKind::OpenAiCompatible]
        );
    }

    #[test]
    fn chain_rejects_bad_lists() {
        let unknown = parse_chain("openai,gemini").unwrap_err();
        assert!(unknown.contains("\"gemini\""), "{unknown}");
        let twice = parse_chain("openai,openai_compatible").unwrap_err();
        assert!(twice.contains("appears twice"), "{twice}");
        let after = parse_chain("offline,openai").unwrap_err();
        assert!(after.contains("after offline"), "{after}");
    }
}
