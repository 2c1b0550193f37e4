//! The retry table: how often and after what delay each error class is retried.

use std::time::Duration;

use rand::Rng;

use super::error::{ErrorClass, JobError};

/// One row of the retry table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Retries allowed after the first attempt; `None` means no limit of its own (the job's
    /// total attempt limit still applies).
    pub max_retries: Option<u32>,
    /// Delay before the first retry.
    pub base: Duration,
    /// Each further retry waits this many times longer.
    pub factor: u32,
    /// Longest delay.
    pub cap: Duration,
}

impl RetryRule {
    /// Computes the delay before retry number `retry` (0 for the first retry), before jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let growth = u64::from(self.factor).saturating_pow(retry);
        let millis = (self.base.as_millis() as u64).saturating_mul(growth);
        Duration::from_millis(millis).min(self.cap)
    }

    /// Parses `retries,base,factor,cap` such as `5,3s,2,300s` (retries may be `unlimited`,
    /// durations take `ms`, `s` or `m`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [retries, base, factor, cap] = parts.as_slice() else {
            return Err(format!(
                "retry rule '{text}' needs four comma-separated parts: retries,base,factor,cap \
                 (for example 5,3s,2,300s)"
            ));
        };
        let max_retries = if *retries == "unlimited" {
            None
        } else {
            Some(retries.parse().map_err(|_| {
                format!("retry count '{retries}' in '{text}' is not a whole number or 'unlimited'")
            })?)
        };
        let factor = factor
            .parse()
            .ok()
            .filter(|factor| *factor >= 1)
            .ok_or_else(|| format!("factor '{factor}' in '{text}' must be a whole number >= 1"))?;
        Ok(Self {
            max_retries,
            base: parse_duration(base)?,
            factor,
            cap: parse_duration(cap)?,
        })
    }
}

/// Parses `250ms`, `3s` or `5m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit_millis) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1_000)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000)
    } else {
        return Err(format!(
            "duration '{text}' needs a unit: ms, s or m (for example 3s)"
        ));
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration '{text}' does not start with a whole number"))?;
    Ok(Duration::from_millis(value * unit_millis))
}

/// The whole retry table, one rule per error class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Serialization failures, deadlocks, lost connections.
    pub database: RetryRule,
    /// Connect failures, timeouts, 5xx.
    pub network: RetryRule,
    /// Model provider failures.
    pub model_provider: RetryRule,
    /// 429 responses without `Retry-After`. With the header, the server's delay is used.
    pub rate_limited: RetryRule,
    /// Open circuit breaker, used when the error does not carry the reopen time.
    pub circuit_open: RetryRule,
    /// Attempts allowed per run across all classes, so a job that keeps meeting an open breaker
    /// still ends in dead letters.
    pub max_attempts_per_run: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            database: RetryRule {
                max_retries: Some(3),
                base: Duration::from_secs(1),
                factor: 2,
                cap: Duration::from_secs(30),
            },
            network: RetryRule {
                max_retries: Some(5),
                base: Duration::from_secs(3),
                factor: 2,
                cap: Duration::from_secs(300),
            },
            model_provider: RetryRule {
                max_retries: Some(4),
                base: Duration::from_secs(5),
                factor: 3,
                cap: Duration::from_secs(600),
            },
            rate_limited: RetryRule {
                max_retries: Some(8),
                base: Duration::from_secs(30),
                factor: 2,
                cap: Duration::from_secs(3600),
            },
            circuit_open: RetryRule {
                max_retries: None,
                base: Duration::from_secs(60),
                factor: 1,
                cap: Duration::from_secs(60),
            },
            max_attempts_per_run: 50,
        }
    }
}

/// The decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Schedule another attempt after `delay` (jitter included).
    Retry {
        /// Wait before the next attempt.
        delay: Duration,
        /// The delay before jitter, kept in the attempt history.
        nominal: Duration,
    },
    /// Stop: write the dead letter.
    GiveUp,
}

impl RetryPolicy {
    /// Returns the rule of `class`, or `None` for permanent errors, which are never retried.
    pub fn rule(&self, class: ErrorClass) -> Option<&RetryRule> {
        match class {
            ErrorClass::Database => Some(&self.database),
            ErrorClass::Network => Some(&self.network),
            ErrorClass::ModelProvider => Some(&self.model_provider),
            ErrorClass::RateLimited => Some(&self.rate_limited),
            ErrorClass::CircuitOpen => Some(&self.circuit_open),
            ErrorClass::Permanent => None,
        }
    }

    /// Decides on a failed attempt. `class_failures` counts this run's failures of the same
    /// class including this one; `run_attempts` counts every attempt of this run so far.
    pub fn decide(
        &self,
        error: &JobError,
        class_failures: u32,
        run_attempts: u32,
        rng: &mut impl Rng,
    ) -> Decision {
        let Some(rule) = self.rule(error.class) else {
            return Decision::GiveUp;
        };
        if run_attempts >= self.max_attempts_per_run {
            return Decision::GiveUp;
        }
        if rule.max_retries.is_some_and(|max| class_failures > max) {
            return Decision::GiveUp;
        }
        let retry = class_failures.saturating_sub(1);
        match (error.class, error.retry_after) {
            // A wait the other side asked for is a floor: never come back earlier than that,
            // and spread clients by adding up to a tenth more.
            (ErrorClass::RateLimited | ErrorClass::CircuitOpen, Some(wait)) => {
                // A remote header decides `wait`, so bound it before doing arithmetic with it.
                let wait = wait.min(MAX_REQUESTED_WAIT);
                let spread = rng.random_range(0.0..=0.1);
                Decision::Retry {
                    delay: wait + wait.mul_f64(spread),
                    nominal: wait,
                }
            }
            _ => {
                let nominal = rule.delay(retry);
                Decision::Retry {
                    delay: jitter(nominal, rng),
                    nominal,
                }
            }
        }
    }
}

/// The maximum wait that a `Retry-After` or an open breaker can impose on one retry. Longer
/// requests are cut to it, as the provider gateway cuts its stored cooldowns.
pub const MAX_REQUESTED_WAIT: Duration = Duration::from_secs(60 * 60);

/// Picks a random delay between half and all of `delay`, so jobs that failed together do not
/// retry together.
pub fn jitter(delay: Duration, rng: &mut impl Rng) -> Duration {
    delay.mul_f64(rng.random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(class: ErrorClass) -> JobError {
        JobError::new(class, "failed")
    }

    /// Expected attempts and nominal delays of the default table: (class, retries, delays).
    fn table() -> Vec<(ErrorClass, u32, Vec<u64>)> {
        vec![
            (ErrorClass::Database, 3, vec![1, 2, 4]),
            (ErrorClass::Network, 5, vec![3, 6, 12, 24, 48]),
            (ErrorClass::ModelProvider, 4, vec![5, 15, 45, 135]),
            (
                ErrorClass::RateLimited,
                8,
                vec![30, 60, 120, 240, 480, 960, 1920, 3600],
            ),
        ]
    }

    #[test]
    fn default_table_rows() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rng();
        for (class, retries, delays) in table() {
            for failure in 1..=retries {
                let decision = policy.decide(&error(class), failure, failure, &mut rng);
                let Decision::Retry { delay, nominal } = decision else {
                    panic!("{class}: failure {failure} should retry, got {decision:?}");
                };
                let expected = Duration::from_secs(delays[failure as usize - 1]);
                assert_eq!(
                    nominal, expected,
                    "{class}: nominal delay of retry {failure}"
                );
                assert!(
                    delay >= expected / 2 && delay <= expected,
                    "{class}: delay {delay:?} outside 50-100 % of {expected:?}"
                );
            }
            let last = policy.decide(&error(class), retries + 1, retries + 1, &mut rng);
            assert_eq!(last, Decision::GiveUp, "{class}: gives up after {retries}");
        }
    }

    #[test]
    fn permanent_never_retries() {
        let policy = RetryPolicy::default();
        let decision = policy.decide(&error(ErrorClass::Permanent), 1, 1, &mut rand::rng());
        assert_eq!(decision, Decision::GiveUp);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::default();
        let wait = Duration::from_secs(7);
        let rate_limited = JobError::rate_limited("slow down", Some(wait));
        for _ in 0..100 {
            let Decision::Retry { delay, nominal } =
                policy.decide(&rate_limited, 1, 1, &mut rand::rng())
            else {
                panic!("429 should retry");
            };
            assert_eq!(nominal, wait);
            assert!(delay >= wait, "{delay:?} is shorter than Retry-After");
            assert!(delay <= wait.mul_f64(1.1), "{delay:?} adds more than 10 %");
        }
    }

    #[test]
    fn absurd_retry_after_is_capped() {
        let policy = RetryPolicy::default();
        let huge = JobError::rate_limited("slow down", Some(Duration::from_secs(u64::MAX)));
        let Decision::Retry { delay, nominal } = policy.decide(&huge, 1, 1, &mut rand::rng())
        else {
            panic!("429 should retry");
        };
        assert_eq!(nominal, MAX_REQUESTED_WAIT);
        assert!(delay >= MAX_REQUESTED_WAIT, "{delay:?}");
        assert!(delay <= MAX_REQUESTED_WAIT.mul_f64(1.1), "{delay:?}");
    }

    #[test]
    fn circuit_open_waits_for_reopen() {
        let policy = RetryPolicy::default();
        let open = JobError::circuit_open("breaker open", Duration::from_secs(42));
        let decision = policy.decide(&open, 30, 30, &mut rand::rng());
        assert!(
            matches!(decision, Decision::Retry { nominal, .. } if nominal == Duration::from_secs(42))
        );
        let exhausted = policy.decide(&open, 50, 50, &mut rand::rng());
        assert_eq!(
            exhausted,
            Decision::GiveUp,
            "the per-run attempt limit ends it"
        );
    }

    #[test]
    fn rule_parsing() {
        assert_eq!(
            RetryRule::parse("5,3s,2,300s"),
            Ok(RetryRule {
                max_retries: Some(5),
                base: Duration::from_secs(3),
                factor: 2,
                cap: Duration::from_secs(300),
            })
        );
        assert_eq!(
            RetryRule::parse("unlimited,250ms,1,1m").map(|rule| rule.max_retries),
            Ok(None)
        );
        let error = RetryRule::parse("5,3,2,300s").unwrap_err();
        assert!(error.contains("'3'"), "{error}");
        let error = RetryRule::parse("5,3s").unwrap_err();
        assert!(error.contains("four comma-separated parts"), "{error}");
        let error = RetryRule::parse("x,3s,2,1m").unwrap_err();
        assert!(error.contains("'x'"), "{error}");
    }
}
