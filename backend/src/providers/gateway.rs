//! The gateway that callers use instead of a raw provider: the fallback chain with circuit
//! breakers, rate limits, the monthly token budget and a record of every call.
//!
//! [`Gateway::chat`] tries each model provider in order. It skips a provider whose breaker for
//! the tenant is open, whose rate limit is used up or that asked to wait after a 429, and moves
//! on to the next one when a call fails. When no model provider answers, or the tenant is over
//! its monthly token budget, the result is [`Answer::Offline`] with the reason, and the caller
//! falls back to its deterministic rules, because the offline provider has no free-form chat.
//!
//! The gateway never waits. A job that would rather wait for a model provider than use its rules
//! converts the offline reason with [`OfflineReason::into_job_error`], which carries the
//! `rate_limited` or `circuit_open` class and the time the first provider becomes usable again.
//!
//! Bookkeeping before a call (budget, breaker, rate limit) fails the call when PostgreSQL
//! fails, because the limits cannot be enforced without it. Bookkeeping after a call (the record,
//! token counts, the breaker's outcome) is logged and skipped on a database error, so that an
//! answer already paid for is not thrown away.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::breaker::{self, Admission, BreakerState, CallOutcome};
use super::calls::{self, CallRecord, Operation};
use super::limits::{self, RateDecision};
use super::offline::{hashed_embedding, OFFLINE_EMBEDDING_MODEL};
use super::output::{list_errors, repair_request};
use super::settings::{BreakerSettings, PriceTable, ProviderSettings, RateLimits};
use super::{
    AnthropicProvider, ChatRequest, Embeddings, OfflineProvider, OpenAiProvider, Provider,
    ProviderError, ProviderKind,
};
use crate::ids::TenantId;
use crate::jobs::{ErrorClass, JobError};

/// The numbers the gateway enforces.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Circuit breaker numbers.
    pub breaker: BreakerSettings,
    /// Per-minute limits of each provider.
    pub rate_limits: RateLimits,
    /// Tokens per tenant and calendar month (UTC); 0 is unlimited.
    pub monthly_token_budget: u64,
    /// Prices per model.
    pub prices: PriceTable,
}

impl Policy {
    /// Takes the numbers from the provider settings.
    pub fn from_settings(settings: &ProviderSettings) -> Self {
        Self {
            breaker: settings.breaker,
            rate_limits: settings.rate_limits,
            monthly_token_budget: settings.monthly_token_budget,
            prices: settings.prices.clone(),
        }
    }
}

/// The fallback chain with its bookkeeping in PostgreSQL; cheap to share behind an `Arc`.
pub struct Gateway {
    pool: PgPool,
    providers: Vec<Arc<dyn Provider>>,
    offline: OfflineProvider,
    policy: Policy,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("chain", &self.chain())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Creates a gateway that routes everything to the offline provider.
    pub fn offline_only(pool: PgPool) -> Self {
        Self {
            pool,
            providers: Vec::new(),
            offline: OfflineProvider::new(),
            policy: Policy::default(),
        }
    }

    /// Creates a gateway over `providers`, tried in order before `offline`. Each kind may appear
    /// once, because breakers and rate limits are kept per kind.
    pub fn new(
        pool: PgPool,
        providers: Vec<Arc<dyn Provider>>,
        policy: Policy,
    ) -> Result<Self, ProviderError> {
        let mut seen = Vec::new();
        for provider in &providers {
            let kind = provider.kind();
            if kind == ProviderKind::Offline || seen.contains(&kind) {
                return Err(ProviderError::InvalidConfig {
                    provider: kind,
                    detail: "each model provider may appear once in the chain, and offline only \
                             as its implied end"
                        .to_string(),
                });
            }
            seen.push(kind);
        }
        Ok(Self {
            pool,
            providers,
            offline: OfflineProvider::new(),
            policy,
        })
    }

    /// Builds the providers that `settings.chain` lists, checking that each has its settings.
    pub fn from_settings(pool: PgPool, settings: &ProviderSettings) -> Result<Self, ProviderError> {
        let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
        for kind in &settings.chain {
            let missing = |what: &str| ProviderError::InvalidConfig {
                provider: *kind,
                detail: format!("the provider chain lists it, but {what}"),
            };
            let provider: Arc<dyn Provider> = match kind {
                ProviderKind::OpenAiCompatible => {
                    let config = settings
                        .openai
                        .clone()
                        .ok_or_else(|| missing("its base URL and model are not configured"))?;
                    Arc::new(OpenAiProvider::new(config)?)
                }
                ProviderKind::Anthropic => {
                    let config = settings.anthropic.clone().ok_or_else(|| {
                        missing("its base URL, API key and model are not configured")
                    })?;
                    Arc::new(AnthropicProvider::new(config)?)
                }
                ProviderKind::Offline => continue,
            };
            providers.push(provider);
        }
        Self::new(pool, providers, Policy::from_settings(settings))
    }

    /// Returns the chain in order, `offline` last.
    pub fn chain(&self) -> Vec<ProviderKind> {
        let mut chain: Vec<ProviderKind> = self.providers.iter().map(|p| p.kind()).collect();
        chain.push(ProviderKind::Offline);
        chain
    }

    /// Returns each provider of the chain with its chat model, `offline` last.
    pub fn chat_models(&self) -> Vec<(ProviderKind, String)> {
        let offline: &dyn Provider = &self.offline;
        self.providers
            .iter()
            .map(|provider| provider.as_ref())
            .chain([offline])
            .map(|provider| (provider.kind(), provider.chat_model().to_string()))
            .collect()
    }

    /// Returns the enforced numbers.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Returns the pool the bookkeeping uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Sends `request` (rendered from `template`) through the chain for `tenant` and parses the
    /// output with `parse`, such as [`super::output::parse_validated`]. Invalid output gets one
    /// repair request on the same provider before the gateway moves on. Each request is
    /// recorded in `provider_calls`.
    pub async fn chat<T, F>(
        &self,
        tenant: TenantId,
        template: &str,
        request: &ChatRequest,
        correlation_id: &str,
        parse: F,
    ) -> Result<Answer<T>, GatewayError>
    where
        F: Fn(&Value) -> Result<T, Vec<String>>,
    {
        request.check().map_err(GatewayError::InvalidRequest)?;
        let call = CallContext {
            tenant,
            template,
            correlation_id,
            prompt_hash: request.prompt_hash(),
        };
        if self.providers.is_empty() {
            return Ok(self
                .route_offline(&call, OfflineCause::NoProviderConfigured, Vec::new())
                .await);
        }
        if let Some(cause) = self.over_budget(tenant).await? {
            return Ok(self.route_offline(&call, cause, Vec::new()).await);
        }

        let mut skipped = Vec::new();
        for provider in &self.providers {
            let Some(admitted) = self.admit(&call, provider.kind(), &mut skipped).await? else {
                continue;
            };
            let fallback = describe_skips(&skipped);
            let result = self
                .chat_on(
                    provider.as_ref(),
                    &call,
                    request,
                    &parse,
                    &admitted,
                    fallback.as_deref(),
                )
                .await;
            match result {
                Ok((output, model, repaired)) => {
                    self.finish(&call, provider.kind(), CallOutcome::Success, admitted.probe)
                        .await;
                    return Ok(Answer::Model(ModelAnswer {
                        output,
                        provider: provider.kind(),
                        model,
                        repaired,
                        skipped,
                    }));
                }
                Err(error) => {
                    let skip = self
                        .fail(&call, provider.kind(), error, admitted.probe)
                        .await;
                    skipped.push(skip);
                }
            }
        }
        Ok(self
            .route_offline(&call, OfflineCause::ChainExhausted, skipped)
            .await)
    }

    /// Embeds `texts` (for `purpose`, such as `knowledge_chunks`) with the first provider of the
    /// chain that has an embedding model and is usable, else with the offline embeddings.
    ///
    /// Vectors of different models cannot be compared, so callers store
    /// [`Embeddings::model`] with the vectors and search only among vectors of one model.
    pub async fn embed(
        &self,
        tenant: TenantId,
        purpose: &str,
        texts: &[String],
        correlation_id: &str,
    ) -> Result<EmbedAnswer, GatewayError> {
        let call = CallContext {
            tenant,
            template: purpose,
            correlation_id,
            prompt_hash: texts_hash(texts),
        };
        let capable: Vec<&Arc<dyn Provider>> = self
            .providers
            .iter()
            .filter(|provider| provider.embedding_model().is_some())
            .collect();
        if texts.is_empty() {
            let provider: &dyn Provider = match capable.first() {
                Some(provider) => provider.as_ref(),
                None => &self.offline,
            };
            return Ok(EmbedAnswer {
                embeddings: Embeddings {
                    vectors: Vec::new(),
                    model: provider.embedding_model().unwrap_or_default().to_string(),
                    input_tokens: 0,
                    latency: Duration::ZERO,
                },
                provider: provider.kind(),
                offline_reason: None,
            });
        }

        let mut skipped = Vec::new();
        let cause = if capable.is_empty() {
            OfflineCause::NoProviderConfigured
        } else if let Some(cause) = self.over_budget(tenant).await? {
            cause
        } else {
            for provider in capable {
                let Some(admitted) = self.admit(&call, provider.kind(), &mut skipped).await? else {
                    continue;
                };
                let fallback = describe_skips(&skipped);
                let result = self
                    .embed_on(
                        provider.as_ref(),
                        &call,
                        texts,
                        &admitted,
                        fallback.as_deref(),
                    )
                    .await;
                match result {
                    Ok(embeddings) => {
                        self.finish(&call, provider.kind(), CallOutcome::Success, admitted.probe)
                            .await;
                        return Ok(EmbedAnswer {
                            embeddings,
                            provider: provider.kind(),
                            offline_reason: None,
                        });
                    }
                    Err(error) => {
                        let skip = self
                            .fail(&call, provider.kind(), error, admitted.probe)
                            .await;
                        skipped.push(skip);
                    }
                }
            }
            OfflineCause::ChainExhausted
        };

        let reason = OfflineReason { cause, skipped };
        let embeddings = self.offline_embed(&call, texts, &reason).await;
        Ok(EmbedAnswer {
            embeddings,
            provider: ProviderKind::Offline,
            offline_reason: Some(reason),
        })
    }

    /// Embeds `texts` with `provider` alone, under the same breaker, rate limits, budget and
    /// call records as chain calls, but without a fallback. Stored knowledge vectors must all
    /// come from one model. So when the provider is not usable, the caller gets the reason and
    /// its wait, and retries later instead of receiving another model's vectors.
    pub async fn embed_through(
        &self,
        provider: &dyn Provider,
        tenant: TenantId,
        purpose: &str,
        texts: &[String],
        correlation_id: &str,
    ) -> Result<Result<Embeddings, OfflineReason>, GatewayError> {
        let call = CallContext {
            tenant,
            template: purpose,
            correlation_id,
            prompt_hash: texts_hash(texts),
        };
        if let Some(cause) = self.over_budget(tenant).await? {
            return Ok(Err(OfflineReason {
                cause,
                skipped: Vec::new(),
            }));
        }
        let mut skipped = Vec::new();
        if let Some(admitted) = self.admit(&call, provider.kind(), &mut skipped).await? {
            match self.embed_on(provider, &call, texts, &admitted, None).await {
                Ok(embeddings) => {
                    self.finish(&call, provider.kind(), CallOutcome::Success, admitted.probe)
                        .await;
                    return Ok(Ok(embeddings));
                }
                Err(error) => {
                    let skip = self
                        .fail(&call, provider.kind(), error, admitted.probe)
                        .await;
                    skipped.push(skip);
                }
            }
        }
        Ok(Err(OfflineReason {
            cause: OfflineCause::ChainExhausted,
            skipped,
        }))
    }

    /// Returns the over-budget cause when the tenant has used its monthly tokens.
    async fn over_budget(&self, tenant: TenantId) -> Result<Option<OfflineCause>, GatewayError> {
        let limit = self.policy.monthly_token_budget;
        if limit == 0 {
            return Ok(None);
        }
        let usage = limits::month_usage(&self.pool, tenant).await?;
        if usage.tokens < limit {
            return Ok(None);
        }
        Ok(Some(OfflineCause::OverBudget {
            used: usage.tokens,
            limit,
            month: usage.month,
        }))
    }

    /// Asks the breaker and the rate limiter; returns `None` and adds a skip when either rejects
    /// the call.
    async fn admit(
        &self,
        call: &CallContext<'_>,
        kind: ProviderKind,
        skipped: &mut Vec<Skip>,
    ) -> Result<Option<Admitted>, GatewayError> {
        let probe =
            match breaker::admit(&self.pool, call.tenant, kind, &self.policy.breaker).await? {
                Admission::Allowed => false,
                Admission::Probe => true,
                Admission::Open { reopens_at } => {
                    skipped.push(Skip::new(
                        kind,
                        SkipReason::BreakerOpen { until: reopens_at },
                    ));
                    return Ok(None);
                }
                Admission::ProbeRunning => {
                    skipped.push(Skip::new(kind, SkipReason::ProbeRunning));
                    return Ok(None);
                }
            };
        if probe {
            tracing::info!(
                tenant = %call.tenant,
                provider = %kind,
                correlation_id = call.correlation_id,
                "circuit breaker is half-open; this call is the probe"
            );
        }

        let decision = match limits::reserve(&self.pool, kind, &self.policy.rate_limits).await {
            Ok(decision) => decision,
            Err(error) => {
                if probe {
                    self.finish(call, kind, CallOutcome::Neutral, true).await;
                }
                return Err(error.into());
            }
        };
        let reason = match decision {
            RateDecision::Allowed { window_start } => {
                return Ok(Some(Admitted {
                    probe,
                    window_start,
                }))
            }
            RateDecision::Exhausted { limit, resets_at } => SkipReason::RateLimited {
                limit,
                until: resets_at,
            },
            RateDecision::CoolingDown { until } => SkipReason::CoolingDown { until },
        };
        if probe {
            self.finish(call, kind, CallOutcome::Neutral, true).await;
        }
        tracing::info!(
            tenant = %call.tenant,
            provider = %kind,
            correlation_id = call.correlation_id,
            reason = %reason,
            "skipping a rate-limited model provider"
        );
        skipped.push(Skip::new(kind, reason));
        Ok(None)
    }

    /// Runs the request and at most one repair request on one provider, recording each.
    /// Returns the output, the reported model and whether a repair was needed.
    async fn chat_on<T, F>(
        &self,
        provider: &dyn Provider,
        call: &CallContext<'_>,
        request: &ChatRequest,
        parse: &F,
        admitted: &Admitted,
        fallback: Option<&str>,
    ) -> Result<(T, String, bool), ProviderError>
    where
        F: Fn(&Value) -> Result<T, Vec<String>>,
    {
        let mut current = request.clone();
        let mut last_errors = Vec::new();
        for attempt in 1..=2u8 {
            if attempt == 2 {
                self.add_usage(provider.kind(), admitted, 0, 1).await;
            }
            let started = Instant::now();
            let result = provider.chat_structured(&current).await;
            let latency = started.elapsed();
            let mut record = CallRecord {
                tenant: call.tenant,
                provider: provider.kind(),
                operation: Operation::Chat,
                model: provider.chat_model(),
                template: call.template,
                prompt_hash: &call.prompt_hash,
                attempt,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: None,
                latency,
                failure: None,
                error: None,
                fallback_reason: fallback,
                correlation_id: call.correlation_id,
            };

            let (output, errors) = match result {
                Ok(response) => {
                    let tokens =
                        u64::from(response.input_tokens) + u64::from(response.output_tokens);
                    self.add_usage(provider.kind(), admitted, tokens, 0).await;
                    record.model = &response.model;
                    record.input_tokens = response.input_tokens;
                    record.output_tokens = response.output_tokens;
                    record.cost_usd = self.policy.prices.cost(
                        &response.model,
                        response.input_tokens,
                        response.output_tokens,
                    );
                    match parse(&response.value) {
                        Ok(output) => {
                            self.record(&record).await;
                            return Ok((output, response.model.clone(), attempt == 2));
                        }
                        Err(errors) => {
                            let message = format!(
                                "output failed validation against schema {:?}: {}",
                                request.schema_name,
                                list_errors(&errors, "; ")
                            );
                            record.failure = Some(ErrorClass::ModelProvider);
                            record.error = Some(&message);
                            self.record(&record).await;
                            (Some(response.value.to_string()), errors)
                        }
                    }
                }
                Err(ProviderError::MalformedOutput { detail, output, .. }) => {
                    let message = format!("output is invalid: {detail}");
                    record.failure = Some(ErrorClass::ModelProvider);
                    record.error = Some(&message);
                    self.record(&record).await;
                    (output, vec![detail])
                }
                Err(error) => {
                    let message = error.to_string();
                    record.failure = Some(error.class());
                    record.error = Some(&message);
                    self.record(&record).await;
                    return Err(error);
                }
            };
            if attempt == 1 {
                tracing::warn!(
                    tenant = %call.tenant,
                    provider = %provider.kind(),
                    template = call.template,
                    correlation_id = call.correlation_id,
                    error_count = errors.len(),
                    first_error = errors.first().map(String::as_str).unwrap_or(""),
                    "model output failed validation; sending one repair request"
                );
                current = repair_request(request, output, &errors);
            }
            last_errors = errors;
        }
        Err(ProviderError::MalformedOutput {
            origin: format!("{} model {}", provider.kind(), provider.chat_model()),
            detail: format!(
                "it failed validation against schema {:?} after one repair attempt: {}",
                request.schema_name,
                list_errors(&last_errors, "; ")
            ),
            output: None,
        })
    }

    /// Runs one embeddings request on one provider and records it.
    async fn embed_on(
        &self,
        provider: &dyn Provider,
        call: &CallContext<'_>,
        texts: &[String],
        admitted: &Admitted,
        fallback: Option<&str>,
    ) -> Result<Embeddings, ProviderError> {
        let configured = provider.embedding_model().unwrap_or_default();
        let started = Instant::now();
        let result = provider.embed(texts).await;
        let latency = started.elapsed();
        let (model, input_tokens, failure, error) = match &result {
            Ok(embeddings) => (
                embeddings.model.as_str(),
                embeddings.input_tokens,
                None,
                None,
            ),
            Err(error) => (configured, 0, Some(error.class()), Some(error.to_string())),
        };
        self.add_usage(provider.kind(), admitted, u64::from(input_tokens), 0)
            .await;
        self.record(&CallRecord {
            tenant: call.tenant,
            provider: provider.kind(),
            operation: Operation::Embed,
            model,
            template: call.template,
            prompt_hash: &call.prompt_hash,
            attempt: 1,
            input_tokens,
            output_tokens: 0,
            cost_usd: self.policy.prices.cost(model, input_tokens, 0),
            latency,
            failure,
            error: error.as_deref(),
            fallback_reason: fallback,
            correlation_id: call.correlation_id,
        })
        .await;
        result
    }

    /// Handles a failed call: a 429 starts a cooldown, the breaker learns the outcome, and the
    /// failure is logged. Returns the skip that explains the fallback.
    async fn fail(
        &self,
        call: &CallContext<'_>,
        kind: ProviderKind,
        error: ProviderError,
        probe: bool,
    ) -> Skip {
        let message = error.to_string();
        let mut retry_after = error.retry_after();
        if matches!(error, ProviderError::RateLimited { .. }) {
            match limits::cool_down(&self.pool, kind, retry_after, &message).await {
                Ok(until) => {
                    retry_after = Some(until_from_now(until));
                }
                Err(db_error) => tracing::error!(
                    provider = %kind,
                    error = %db_error,
                    "storing a provider's 429 cooldown failed; it may be called again at once"
                ),
            }
        }
        let outcome = CallOutcome::of_error(&error);
        let state = self.finish(call, kind, outcome, probe).await;
        tracing::warn!(
            tenant = %call.tenant,
            provider = %kind,
            template = call.template,
            correlation_id = call.correlation_id,
            class = %error.class(),
            counts_for_breaker = outcome == CallOutcome::Failure,
            error = %message,
            "model provider call failed; trying the next provider"
        );
        if state == Some(BreakerState::Open) && outcome == CallOutcome::Failure {
            tracing::warn!(
                tenant = %call.tenant,
                provider = %kind,
                open_seconds = self.policy.breaker.open_for.as_secs(),
                "circuit breaker is open; calls skip this provider until it half-opens"
            );
        }
        Skip::new(
            kind,
            SkipReason::Failed {
                class: error.class(),
                message,
                retry_after,
            },
        )
    }

    /// Reports a call's outcome to the breaker; returns the state afterwards, or `None` when the
    /// database failed (logged).
    async fn finish(
        &self,
        call: &CallContext<'_>,
        kind: ProviderKind,
        outcome: CallOutcome,
        probe: bool,
    ) -> Option<BreakerState> {
        let result = breaker::finish(
            &self.pool,
            call.tenant,
            kind,
            outcome,
            probe,
            &self.policy.breaker,
        )
        .await;
        match result {
            Ok(state) => {
                if probe && state == BreakerState::Closed {
                    tracing::info!(
                        tenant = %call.tenant,
                        provider = %kind,
                        "circuit breaker probe succeeded; the breaker is closed"
                    );
                }
                Some(state)
            }
            Err(error) => {
                tracing::error!(
                    tenant = %call.tenant,
                    provider = %kind,
                    error = %error,
                    "recording a call's outcome in the circuit breaker failed"
                );
                None
            }
        }
    }

    async fn add_usage(&self, kind: ProviderKind, admitted: &Admitted, tokens: u64, requests: u32) {
        let result =
            limits::add_usage(&self.pool, kind, admitted.window_start, tokens, requests).await;
        if let Err(error) = result {
            tracing::error!(
                provider = %kind,
                error = %error,
                "adding a call's tokens to the rate-limit window failed"
            );
        }
    }

    async fn record(&self, record: &CallRecord<'_>) {
        if let Err(error) = calls::record(&self.pool, record).await {
            tracing::error!(
                tenant = %record.tenant,
                provider = %record.provider,
                correlation_id = record.correlation_id,
                error = %error,
                "recording a model provider call failed; the budget will miss its tokens"
            );
        }
    }

    /// Records the routing to the offline rules and builds the offline answer.
    async fn route_offline<T>(
        &self,
        call: &CallContext<'_>,
        cause: OfflineCause,
        skipped: Vec<Skip>,
    ) -> Answer<T> {
        let reason = OfflineReason { cause, skipped };
        let text = reason.to_string();
        tracing::info!(
            tenant = %call.tenant,
            template = call.template,
            correlation_id = call.correlation_id,
            reason = %text,
            "routing the request to the offline rules"
        );
        self.record(&CallRecord {
            tenant: call.tenant,
            provider: ProviderKind::Offline,
            operation: Operation::Chat,
            model: self.offline.chat_model(),
            template: call.template,
            prompt_hash: &call.prompt_hash,
            attempt: 1,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Some(0.0),
            latency: Duration::ZERO,
            failure: None,
            error: None,
            fallback_reason: Some(&text),
            correlation_id: call.correlation_id,
        })
        .await;
        Answer::Offline(reason)
    }

    async fn offline_embed(
        &self,
        call: &CallContext<'_>,
        texts: &[String],
        reason: &OfflineReason,
    ) -> Embeddings {
        let started = Instant::now();
        let embeddings = Embeddings {
            vectors: texts.iter().map(|text| hashed_embedding(text)).collect(),
            model: OFFLINE_EMBEDDING_MODEL.to_string(),
            input_tokens: 0,
            latency: started.elapsed(),
        };
        let text = reason.to_string();
        self.record(&CallRecord {
            tenant: call.tenant,
            provider: ProviderKind::Offline,
            operation: Operation::Embed,
            model: &embeddings.model,
            template: call.template,
            prompt_hash: &call.prompt_hash,
            attempt: 1,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Some(0.0),
            latency: embeddings.latency,
            failure: None,
            error: None,
            fallback_reason: Some(&text),
            correlation_id: call.correlation_id,
        })
        .await;
        embeddings
    }
}

/// Fields shared by every record of one gateway call.
struct CallContext<'a> {
    tenant: TenantId,
    template: &'a str,
    correlation_id: &'a str,
    prompt_hash: String,
}

/// A call the breaker and the rate limiter let through.
struct Admitted {
    probe: bool,
    window_start: OffsetDateTime,
}

/// The result of [`Gateway::chat`].
#[derive(Debug)]
pub enum Answer<T> {
    /// A model provider answered with valid output.
    Model(ModelAnswer<T>),
    /// No model provider answered; the caller uses its deterministic rules.
    Offline(OfflineReason),
}

/// Valid output from a model provider.
#[derive(Debug)]
pub struct ModelAnswer<T> {
    /// The parsed output.
    pub output: T,
    /// The provider that answered.
    pub provider: ProviderKind,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// Whether the output came from the repair request.
    pub repaired: bool,
    /// Providers earlier in the chain that were skipped or failed.
    pub skipped: Vec<Skip>,
}

/// The result of [`Gateway::embed`].
#[derive(Debug)]
pub struct EmbedAnswer {
    /// The vectors and the model that made them.
    pub embeddings: Embeddings,
    /// The provider that made them.
    pub provider: ProviderKind,
    /// The reason for using the offline embeddings; `None` when a model provider answered.
    pub offline_reason: Option<OfflineReason>,
}

/// The reason a request went to the offline rules.
#[derive(Debug, Clone)]
pub struct OfflineReason {
    /// The main cause.
    pub cause: OfflineCause,
    /// Each model provider that was skipped or failed, in chain order.
    pub skipped: Vec<Skip>,
}

/// The main cause of an offline answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineCause {
    /// The chain lists no model provider (for embeddings: none with an embedding model).
    NoProviderConfigured,
    /// The tenant used its monthly token budget.
    OverBudget {
        /// Tokens used this month.
        used: u64,
        /// The monthly budget.
        limit: u64,
        /// The month, `YYYY-MM` (UTC).
        month: String,
    },
    /// Every model provider was skipped or failed.
    ChainExhausted,
}

/// A provider of the chain that did not answer, and why.
#[derive(Debug, Clone)]
pub struct Skip {
    /// The provider.
    pub provider: ProviderKind,
    /// The reason it did not answer.
    pub reason: SkipReason,
}

impl Skip {
    fn new(provider: ProviderKind, reason: SkipReason) -> Self {
        Self { provider, reason }
    }
}

/// The reason a provider did not answer.
#[derive(Debug, Clone)]
pub enum SkipReason {
    /// Its breaker for the tenant is open until `until`.
    BreakerOpen {
        /// When the breaker lets a probe through.
        until: OffsetDateTime,
    },
    /// Its breaker is half-open and another caller runs the probe.
    ProbeRunning,
    /// This minute's requests or tokens are used up.
    RateLimited {
        /// `requests per minute` or `tokens per minute`.
        limit: &'static str,
        /// When the next minute starts.
        until: OffsetDateTime,
    },
    /// It answered 429 earlier and asked to wait until `until`.
    CoolingDown {
        /// End of the wait.
        until: OffsetDateTime,
    },
    /// The call failed.
    Failed {
        /// The job error class of the failure.
        class: ErrorClass,
        /// The error sentence, without keys.
        message: String,
        /// The wait the provider asked for (a 429's `Retry-After`), if any.
        retry_after: Option<Duration>,
    },
}

impl SkipReason {
    /// Returns the job error class a caller that waits would use.
    pub fn class(&self) -> ErrorClass {
        match self {
            SkipReason::BreakerOpen { .. } | SkipReason::ProbeRunning => ErrorClass::CircuitOpen,
            SkipReason::RateLimited { .. } | SkipReason::CoolingDown { .. } => {
                ErrorClass::RateLimited
            }
            SkipReason::Failed { class, .. } => *class,
        }
    }

    /// Returns how long until the provider may be usable again, when known.
    pub fn wait(&self) -> Option<Duration> {
        match self {
            SkipReason::BreakerOpen { until }
            | SkipReason::RateLimited { until, .. }
            | SkipReason::CoolingDown { until } => Some(until_from_now(*until)),
            SkipReason::ProbeRunning => None,
            SkipReason::Failed { retry_after, .. } => *retry_after,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |until: &OffsetDateTime| until_from_now(*until).as_secs();
        match self {
            SkipReason::BreakerOpen { until } => {
                write!(f, "circuit breaker open for another {} s", seconds(until))
            }
            SkipReason::ProbeRunning => {
                f.write_str("circuit breaker half-open while another call probes it")
            }
            SkipReason::RateLimited { limit, until } => {
                write!(f, "{limit} limit reached, resets in {} s", seconds(until))
            }
            SkipReason::CoolingDown { until } => write!(
                f,
                "rate limited by the provider (HTTP 429), waiting another {} s",
                seconds(until)
            ),
            SkipReason::Failed { class, message, .. } => write!(f, "{class} error: {message}"),
        }
    }
}

impl fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            OfflineCause::NoProviderConfigured => f.write_str("no model provider is configured")?,
            OfflineCause::OverBudget { used, limit, month } => write!(
                f,
                "the tenant is over its monthly token budget ({used} of {limit} tokens used in \
                 {month}, UTC)"
            )?,
            OfflineCause::ChainExhausted => f.write_str("no model provider answered")?,
        }
        if let Some(skips) = describe_skips(&self.skipped) {
            write!(f, ": {skips}")?;
        }
        Ok(())
    }
}

impl OfflineReason {
    /// Returns the shortest known wait until a skipped provider may be usable again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.skipped
            .iter()
            .filter_map(|skip| skip.reason.wait())
            .min()
    }

    /// Converts the reason into a job error for a job that waits for a model provider rather
    /// than use the offline rules. The class and wait come from the provider that becomes
    /// usable first, or from the last failure when no wait is known. A missing provider or an
    /// exhausted budget is permanent, because retrying within the month cannot help.
    pub fn into_job_error(self) -> JobError {
        let message = format!("no model provider is usable: {self}");
        let soonest = self
            .skipped
            .iter()
            .filter_map(|skip| skip.reason.wait().map(|wait| (wait, skip.reason.class())))
            .min_by_key(|(wait, _)| *wait);
        match (&self.cause, soonest, self.skipped.last()) {
            (OfflineCause::ChainExhausted, Some((wait, class)), _) => JobError {
                class,
                chain: vec![message],
                retry_after: Some(wait),
            },
            (OfflineCause::ChainExhausted, None, Some(last)) => {
                JobError::new(last.reason.class(), message)
            }
            _ => JobError::permanent(message),
        }
    }
}

/// A failure of the gateway itself rather than of a provider.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request fails the checks made before sending; no provider could answer it.
    #[error(transparent)]
    InvalidRequest(ProviderError),
    /// The breaker, rate-limit or budget bookkeeping in PostgreSQL failed.
    #[error("model provider bookkeeping failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<GatewayError> for JobError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::InvalidRequest(error) => error.into_job_error(),
            GatewayError::Database(error) => {
                JobError::from(error).context("model provider bookkeeping failed")
            }
        }
    }
}

/// Joins skips as `provider: reason; provider: reason`, or `None` when there are none.
fn describe_skips(skipped: &[Skip]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let parts: Vec<String> = skipped
        .iter()
        .map(|skip| format!("{} skipped: {}", skip.provider, skip.reason))
        .collect();
    Some(parts.join("; "))
}

/// Returns the time from now until `until`, zero when it has passed.
fn until_from_now(until: OffsetDateTime) -> Duration {
    let remaining = until - OffsetDateTime::now_utc();
    Duration::try_from(remaining).unwrap_or(Duration::ZERO)
}

/// Returns the hex SHA-256 of the texts of an embeddings request.
fn texts_hash(texts: &[String]) -> String {
    let canonical = serde_json::to_string(texts).unwrap_or_default();
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(class: ErrorClass, retry_after: Option<Duration>) -> SkipReason {
        SkipReason::Failed {
            class,
            message: "boom".to_string(),
            retry_after,
        }
    }

    #[test]
    fn job_error_takes_soonest_wait() {
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(30);
        let reason = OfflineReason {
            cause: OfflineCause::ChainExhausted,
            skipped: vec![
                Skip::new(
                    ProviderKind::OpenAiCompatible,
                    failed(ErrorClass::RateLimited, Some(Duration::from_secs(90))),
                ),
                Skip::new(
                    ProviderKind::Anthropic,
                    SkipReason::BreakerOpen { until: soon },
                ),
            ],
        };
        let error = reason.into_job_error();
        assert_eq!(error.class, ErrorClass::CircuitOpen);
        let wait = error.retry_after.unwrap();
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
        assert!(wait > Duration::from_secs(25), "{wait:?}");
        assert!(error
            .message()
            .contains("anthropic skipped: circuit breaker open"));
    }

    #[test]
    fn job_error_without_wait_uses_last_failure() {
        let reason = OfflineReason {
            cause: OfflineCause::ChainExhausted,
            skipped: vec![
                Skip::new(ProviderKind::OpenAiCompatible, SkipReason::ProbeRunning),
                Skip::new(
                    ProviderKind::Anthropic,
                    failed(ErrorClass::ModelProvider, None),
                ),
            ],
        };
        let error = reason.into_job_error();
        assert_eq!(error.class, ErrorClass::ModelProvider);
        assert_eq!(error.retry_after, None);
    }

    #[test]
    fn over_budget_is_permanent_and_says_so() {
        let reason = OfflineReason {
            cause: OfflineCause::OverBudget {
                used: 2_000_100,
                limit: 2_000_000,
                month: "2026-12".to_string(),
            },
            skipped: Vec::new(),
        };
        let text = reason.to_string();
        assert!(text.contains("over its monthly token budget"), "{text}");
        assert!(
            text.contains("2000100 of 2000000 tokens used in 2026-12"),
            "{text}"
        );
        assert_eq!(reason.into_job_error().class, ErrorClass::Permanent);
    }

    #[test]
    fn texts_hash_is_hex_sha256() {
        let hash = texts_hash(&["gate".to_string()]);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(hash, texts_hash(&["vault".to_string()]));
    }
}
