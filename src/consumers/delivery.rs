//! The webhook delivery worker: sends the deliveries consumers recorded, signs each body, retries
//! failures with a doubling pause, and disables an integration subscription whose callback keeps
//! failing.
//!
//! Each receiver gets its deliveries in the order they were recorded, unless one is retried: a
//! retry can arrive after later deliveries, so receivers order by the aggregate version the body
//! carries (`metadata.aggregate_version`, or a notification's `appointment_version`).
//!
//! Signature: `X-HealthCore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! The timestamp is signed with the body so a receiver can refuse old replays of a captured request.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::shutdown::Shutdown;
use crate::store::webhooks::{self, Attempt, Delivery, DeliveryStatus, Target};
use crate::store::{Store, subscriptions};

pub const SIGNATURE_HEADER: &str = "x-healthcore-signature";
const BATCH: u64 = 16;
const POLL: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(3600);

/// The value of the signature header for `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct DeliveryWorker {
    store: Store,
    config: WebhookConfig,
    http: reqwest::Client,
    wake: Arc<Notify>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
    clock: Clock,
}

impl DeliveryWorker {
    pub fn new(
        store: Store,
        config: WebhookConfig,
        wake: Arc<Notify>,
        metrics: Arc<crate::telemetry::metrics::Metrics>,
    ) -> anyhow::Result<DeliveryWorker> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("HealthCore-Webhooks/", env!("CARGO_PKG_VERSION")))
            // A receiver that redirects is misconfigured; following would send the signed body elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(DeliveryWorker { store, config, http, wake, metrics, clock: Clock::default() })
    }

    /// Reads `clock` instead of a clock of its own: the application's, which a test can move.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends due deliveries until `shutdown`; what is in flight then finishes first.
    pub async fn run(self, mut shutdown: Shutdown) {
        let this = Arc::new(self);
        while !shutdown.is_shutdown() {
            let sent = match this.round().await {
                Ok(sent) => sent,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read webhook deliveries");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.recv() => {}
                }
            }
        }
    }

    /// Claims due deliveries and sends them: one receiver's in the order they were recorded,
    /// different receivers concurrently. Returns how many it attempted.
    pub async fn round(self: &Arc<Self>) -> Result<usize, sea_orm::DbErr> {
        let now = self.clock.now();
        // The lease outlives one attempt, so a worker that dies mid-attempt leaves the row due again.
        let lease_until = now + chrono::Duration::milliseconds(self.config.timeout_ms as i64 + 5_000);
        let claimed = webhooks::claim_due(self.store.db(), now, lease_until, BATCH).await?;
        let count = claimed.len();
        let mut per_receiver: Vec<(Option<Target>, Vec<Delivery>)> = Vec::new();
        for delivery in claimed {
            match per_receiver.iter_mut().find(|(target, _)| *target == delivery.target) {
                Some((_, queue)) => queue.push(delivery),
                None => per_receiver.push((delivery.target, vec![delivery])),
            }
        }
        let mut sending = tokio::task::JoinSet::new();
        for (_, queue) in per_receiver {
            let this = self.clone();
            sending.spawn(async move {
                for delivery in queue {
                    if let Err(err) = this.attempt(&delivery).await {
                        tracing::warn!(delivery_id = %delivery.id, error = %err, "could not record a webhook attempt");
                    }
                }
            });
        }
        while sending.join_next().await.is_some() {}
        Ok(count)
    }

    async fn attempt(&self, delivery: &Delivery) -> Result<(), sea_orm::DbErr> {
        let db = self.store.db();
        let (url, secret) = match delivery.target {
            Some(Target::Notifications) => match &self.config.notifications {
                Some((url, secret)) => (url.clone(), secret.expose().to_owned()),
                None => return self.give_up(delivery, "the notification webhook is no longer configured").await,
            },
            Some(Target::Subscription(id)) => match subscriptions::find(db, id).await? {
                Some(subscription) if subscription.active => (subscription.callback_url, subscription.secret),
                // Held until the subscription is enabled again (which makes it due).
                Some(_) => return webhooks::postpone(db, delivery.id, None).await,
                None => return self.give_up(delivery, "the subscription was deleted").await,
            },
            None => return self.give_up(delivery, "unknown delivery target").await,
        };
        let result = self.post(&url, secret.as_bytes(), delivery).await;
        let now = self.clock.now();
        let attempt = match &result {
            Ok(status) if (200..300).contains(status) => Attempt {
                status_code: Some(*status),
                error: None,
                status: DeliveryStatus::Delivered,
                next_attempt_at: None,
            },
            failed => {
                let (status_code, error) = match failed {
                    Ok(status) => (Some(*status), format!("the receiver answered {status}")),
                    Err(error) => (None, error.clone()),
                };
                let (status, next_attempt_at) = self.after_failure(delivery.attempts + 1, now);
                Attempt { status_code, error: Some(error), status, next_attempt_at }
            }
        };
        tracing::info!(
            delivery_id = %delivery.id,
            event_id = %delivery.event_id,
            correlation_id = %delivery.correlation_id,
            status_code = ?attempt.status_code,
            outcome = attempt.status.as_str(),
            attempt = delivery.attempts + 1,
            "webhook attempt"
        );
        webhooks::record_attempt(db, delivery.id, &attempt, now).await?;
        let target = match delivery.target {
            Some(Target::Notifications) => "notifications",
            _ => "subscription",
        };
        let outcome = match attempt.status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Pending => "retry",
            DeliveryStatus::Failed => "failed",
        };
        let labels = crate::telemetry::metrics::DeliveryLabels { target, outcome };
        self.metrics.consumers.webhook_deliveries.get_or_create(&labels).inc();
        if let Some(Target::Subscription(id)) = delivery.target {
            self.count_for_subscription(id, attempt.status == DeliveryStatus::Delivered, now).await?;
        }
        Ok(())
    }

    /// `Pending` with the time of the next attempt, or `Failed` once the attempts are used up.
    fn after_failure(&self, attempts: i32, now: DateTime<Utc>) -> (DeliveryStatus, Option<DateTime<Utc>>) {
        if attempts >= self.config.max_attempts {
            return (DeliveryStatus::Failed, None);
        }
        let retries = Backoff::new(Duration::from_millis(self.config.retry_ms), LONGEST_PAUSE);
        let pause = retries.after_failures(u32::try_from(attempts).unwrap_or(1));
        (DeliveryStatus::Pending, Some(now + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::hours(1))))
    }

    async fn count_for_subscription(
        &self,
        id: uuid::Uuid,
        delivered: bool,
        now: DateTime<Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        let db = self.store.db();
        if delivered {
            return subscriptions::record_success(db, id).await;
        }
        let failures = subscriptions::record_failure(db, id).await?;
        if failures >= self.config.disable_after {
            let reason = format!("disabled after {failures} failed delivery attempts in a row");
            subscriptions::set_active(db, id, false, Some(&reason), now).await?;
            tracing::warn!(subscription_id = %id, failures, "integration subscription disabled");
        }
        Ok(())
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) -> Result<(), sea_orm::DbErr> {
        let attempt = Attempt {
            status_code: None,
            error: Some(reason.to_owned()),
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
        };
        webhooks::record_attempt(self.store.db(), delivery.id, &attempt, self.clock.now()).await
    }

    /// One POST; the receiver's status code, or why there was none.
    async fn post(&self, url: &str, secret: &[u8], delivery: &Delivery) -> Result<i32, String> {
        let body = delivery.payload.as_bytes().to_vec();
        let signature = signature(secret, self.clock.now().timestamp(), &body);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("x-healthcore-delivery-id", delivery.id.to_string())
            .header("x-healthcore-event-id", delivery.event_id.to_string())
            .header("x-healthcore-event-type", delivery.event_type.as_str())
            .header("x-correlation-id", delivery.correlation_id.as_str())
            .body(body)
            .send()
            .await
            .map_err(describe_send_error)?;
        Ok(i32::from(response.status().as_u16()))
    }
}

/// What went wrong, without the URL (which may carry a token in its query).
fn describe_send_error(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        err.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature(b"secret", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature(b"secret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature(b"other", 1_700_000_000, b"{}"));
    }
}
