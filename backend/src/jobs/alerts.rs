//! Alerts about critical jobs that failed for good.
//!
//! The runner writes the alert's error log line itself. The dead letter's transaction also
//! queues an [`ALERT_KIND`] job, which posts a Slack-style JSON message through the URL guard
//! when `ALERT_WEBHOOK_URL` is set; being a job, the alert is retried on network errors and
//! survives restarts.

use askama::Template;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::dead_letters::{self, DeadLetter};
use super::error::JobError;
use super::runner::{JobContext, JobHandler};
use super::JobSettings;
use crate::net::{GuardedClient, Policy};

/// Kind of the job that posts an alert.
pub const ALERT_KIND: &str = "alert.dead_letter";

/// The webhook message, rendered from `templates/alerts/dead_letter.json`.
#[derive(Template)]
#[template(path = "alerts/dead_letter.json", escape = "none")]
struct DeadLetterAlert<'a> {
    headline: &'a str,
    summary: &'a str,
    context_line: &'a str,
}

/// Renders the webhook message about a dead letter.
pub fn render_dead_letter_alert(
    dead_letter: &DeadLetter,
    public_url: Option<&str>,
) -> Result<Value, String> {
    let summary_line = &dead_letter.summary;
    let headline = format!(
        "Critical job {} failed for good ({} error)",
        summary_line.kind, summary_line.error_class
    );
    let mut summary = format!(
        "*{}* failed after {} attempts: {}",
        summary_line.kind, summary_line.attempt_count, summary_line.error
    );
    if let Some(base) = public_url {
        summary.push_str(&format!(
            "\n<{}/admin/dead-letters/{}|Open the dead letter>",
            base.trim_end_matches('/'),
            summary_line.id
        ));
    }
    let context_line = format!(
        "dead letter {} | job {} | correlation id {}",
        summary_line.id, summary_line.job_id, dead_letter.correlation_id
    );
    let text = DeadLetterAlert {
        headline: &headline,
        summary: &summary,
        context_line: &context_line,
    }
    .render()
    .map_err(|error| format!("the alert template failed to render: {error}"))?;
    serde_json::from_str(&text)
        .map_err(|error| format!("the alert template produced invalid JSON: {error}"))
}

/// Handler of [`ALERT_KIND`].
pub struct AlertHandler {
    pool: PgPool,
    webhook: Option<(String, GuardedClient)>,
    public_url: Option<String>,
}

impl AlertHandler {
    /// Creates the handler; without a webhook URL it only confirms the alert was logged.
    pub fn new(pool: PgPool, settings: &JobSettings) -> Self {
        Self {
            pool,
            webhook: webhook_client(settings),
            public_url: settings.public_url.clone(),
        }
    }
}

/// Builds the guarded client of the alert webhook, or `None` when no webhook is configured.
fn webhook_client(settings: &JobSettings) -> Option<(String, GuardedClient)> {
    let url = settings.alert_webhook_url.as_ref()?;
    let mut policy = Policy {
        loopback_exceptions: settings.outbound_loopback_exceptions.clone(),
        ..Policy::default()
    };
    // The operator chose this URL, port included; the address checks still apply.
    if let Some(port) = url::Url::parse(url).ok().and_then(|url| url.port()) {
        policy.allowed_ports.push(port);
    }
    Some((url.clone(), GuardedClient::new(policy)))
}

#[async_trait::async_trait]
impl JobHandler for AlertHandler {
    /// Idempotent enough for alerts: the job is keyed on the dead letter, so it is queued once;
    /// a second delivery after a crash may post the message twice, which a person reading the
    /// channel tolerates better than a lost alert.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let Some((url, client)) = &self.webhook else {
            return Ok(());
        };
        let dead_letter_id: Uuid = args
            .get("dead_letter_id")
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "alert job {} has no valid dead_letter_id in {args}",
                    job.job_id
                ))
            })?;
        let Some(dead_letter) = dead_letters::get(&self.pool, None, dead_letter_id).await? else {
            // Pruned or its tenant removed before the alert ran: nothing left to report.
            tracing::warn!(%dead_letter_id, "dead letter of an alert no longer exists");
            return Ok(());
        };
        let message = render_dead_letter_alert(&dead_letter, self.public_url.as_deref())
            .map_err(JobError::permanent)?;
        let status = client
            .post_json(url, &message)
            .await
            .map_err(|error| super::net_error(error).context("posting the alert webhook"))?;
        tracing::info!(%dead_letter_id, status, "alert posted");
        Ok(())
    }
}

/// Handler of [`crate::conversations::lifecycle::ESCALATION_ALERT_KIND`]: posts an escalated
/// conversation to the alert webhook, when one is configured.
pub struct EscalationAlertHandler {
    webhook: Option<(String, GuardedClient)>,
    public_url: Option<String>,
}

impl EscalationAlertHandler {
    /// Creates the handler; without a webhook URL it does nothing, because the in-app
    /// notifications were written with the escalation.
    pub fn new(settings: &JobSettings) -> Self {
        Self {
            webhook: webhook_client(settings),
            public_url: settings.public_url.clone(),
        }
    }
}

/// Builds the Slack-style webhook message about an escalated conversation.
pub fn render_escalation_alert(
    conversation_id: &str,
    reason: &str,
    correlation_id: &str,
    public_url: Option<&str>,
) -> Value {
    let mut text = format!("*Conversation escalated* to the approvers: {reason}");
    if let Some(base) = public_url {
        text.push_str(&format!(
            "\n<{}/chat/{conversation_id}|Open the conversation>",
            base.trim_end_matches('/')
        ));
    }
    serde_json::json!({
        "text": format!("Conversation {conversation_id} escalated"),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": text } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": format!(
                "conversation {conversation_id} | correlation id {correlation_id}") } ] }
        ]
    })
}

#[async_trait::async_trait]
impl JobHandler for EscalationAlertHandler {
    /// Idempotent enough for alerts, like the dead-letter alert: a second delivery after a
    /// crash may post the message twice.
    async fn run(&self, job: &JobContext, args: Value) -> Result<(), JobError> {
        let Some((url, client)) = &self.webhook else {
            return Ok(());
        };
        let conversation_id = args
            .get("conversation_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "escalation alert job {} has no conversation_id",
                    job.job_id
                ))
            })?;
        let reason = args
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        let message = render_escalation_alert(
            conversation_id,
            reason,
            &job.correlation_id,
            self.public_url.as_deref(),
        );
        let status = client
            .post_json(url, &message)
            .await
            .map_err(|error| super::net_error(error).context("posting the escalation alert"))?;
        tracing::info!(conversation_id, status, "escalation alert posted");
        Ok(())
    }
}
