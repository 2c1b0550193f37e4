//! Wake-up sources of a job worker: a ticker that is armed after every poll, and PostgreSQL
//! notifications of new jobs that restart when their connection is lost.
//!
//! apalis combines wake-up sources in order and stops at the first that is ready. Its
//! notification stream ends for good when its listening connection cannot be opened. An ended
//! stream reads as ready on every poll, so a timer placed after it was never armed again. The
//! worker then slept until its next heartbeat (20 s), and jobs scheduled for later ran late.
//! apalis's own interval, placed first, still lost about one wake-up in five in tests: when it
//! fires it makes a new timer without polling it, and nothing then arms that timer. The
//! [`Ticker`] here polls its interval until it is pending, so a tick is always due next.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy, Strategy};
use apalis_postgres::Pubsub;
use futures::Stream;
use sqlx::PgPool;

/// Time between attempts to listen again after the notification connection ended.
pub const RELISTEN_DELAY: Duration = Duration::from_secs(1);

/// Builds the wake-up strategy of a worker on `queue`: poll every `poll_interval`, and at once
/// when PostgreSQL announces a new job.
pub fn strategy(pool: &PgPool, queue: &str, poll_interval: Duration) -> Strategy {
    let pool = pool.clone();
    let queue = queue.to_string();
    let notifications = Restarting::new(RELISTEN_DELAY, move || {
        Pubsub::new(pool.clone(), queue.clone())
    });
    with_notifications(poll_interval, notifications)
}

/// Combines a [`Ticker`] of `poll_interval` with `notifications`, the ticker first so that it
/// is armed on every poll whatever the notifications do.
pub fn with_notifications<S>(poll_interval: Duration, notifications: S) -> Strategy
where
    S: Stream + Unpin + Send + Sync + 'static,
{
    Strategy::new()
        .apply(Ticker::new(poll_interval))
        .stream(notifications)
}

/// A wake-up source that fires every period and is armed again in the same poll.
pub struct Ticker {
    period: Duration,
    interval: Option<tokio::time::Interval>,
}

impl Ticker {
    /// Creates a ticker of `period`; its timer starts on the first poll, inside the runtime.
    pub fn new(period: Duration) -> Self {
        Self {
            period: period.max(Duration::from_millis(1)),
            interval: None,
        }
    }
}

impl PollStrategy for Ticker {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _snapshot: &PollSnapshot) -> Poll<Option<()>> {
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        // Poll until pending: the last poll registers the waker for the next tick.
        let mut fired = false;
        while interval.poll_tick(cx).is_ready() {
            fired = true;
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// A stream that never ends: when the stream made by its factory ends or yields an error, it
/// waits `delay` and starts a new one. Errors are logged and dropped, since a wake-up source has
/// no one to hand them to.
pub struct Restarting<S, F> {
    make: F,
    current: Option<S>,
    delay: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    restarts: u64,
}

impl<S, F> Restarting<S, F>
where
    F: FnMut() -> S,
{
    /// Creates the stream; `make` is called at once and again after each end.
    pub fn new(delay: Duration, mut make: F) -> Self {
        let current = Some(make());
        Self {
            make,
            current,
            delay,
            pause: None,
            restarts: 0,
        }
    }

    /// Returns how many times the inner stream was started again.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

impl<S, T, E, F> Stream for Restarting<S, F>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
    F: FnMut() -> S + Unpin,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
                this.current = Some((this.make)());
                this.restarts += 1;
            }
            let Some(current) = this.current.as_mut() else {
                this.current = Some((this.make)());
                continue;
            };
            match Pin::new(current).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(item))) => return Poll::Ready(Some(item)),
                Poll::Ready(Some(Err(error))) => {
                    tracing::warn!(%error, delay_ms = this.delay.as_millis() as u64,
                        "job notifications failed; listening again after the delay");
                }
                Poll::Ready(None) => {
                    tracing::warn!(
                        delay_ms = this.delay.as_millis() as u64,
                        "job notifications ended; listening again after the delay"
                    );
                }
            }
            this.current = None;
            this.pause = Some(Box::pin(tokio::time::sleep(this.delay)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts how often it is woken.
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn ticker_rearms_when_it_fires() {
        let period = Duration::from_millis(20);
        let mut ticker = Ticker::new(period);
        let snapshot = PollSnapshot::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);

        assert!(ticker.poll_drive(&mut cx, &snapshot).is_pending());
        tokio::time::sleep(period * 2).await;
        assert!(
            counter.0.load(Ordering::SeqCst) >= 1,
            "the first tick woke the task"
        );
        assert!(ticker.poll_drive(&mut cx, &snapshot).is_ready());

        // No further poll: the poll that fired must already have armed the next tick.
        let woken = counter.0.load(Ordering::SeqCst);
        tokio::time::sleep(period * 3).await;
        assert!(
            counter.0.load(Ordering::SeqCst) > woken,
            "the next tick woke the task without another poll"
        );
    }

    #[tokio::test]
    async fn ended_stream_is_started_again_after_the_delay() {
        let made = Arc::new(AtomicUsize::new(0));
        let counter = made.clone();
        // The first stream fails at once, the second ends after one item, the third yields two.
        let delay = Duration::from_millis(20);
        let mut stream = Restarting::new(delay, move || {
            let items: Vec<Result<u32, String>> = match counter.fetch_add(1, Ordering::SeqCst) {
                0 => vec![Err("connection refused".to_string())],
                1 => vec![Ok(1)],
                _ => vec![Ok(2), Ok(3)],
            };
            futures::stream::iter(items)
        });
        let started = std::time::Instant::now();
        assert_eq!(stream.next().await, Some(1));
        assert!(
            started.elapsed() >= delay,
            "the first restart waited the delay"
        );
        assert_eq!(stream.next().await, Some(2));
        assert_eq!(stream.next().await, Some(3));
        assert!(
            started.elapsed() >= 2 * delay,
            "each restart waited the delay"
        );
        assert_eq!(stream.restarts(), 2);
        assert_eq!(made.load(Ordering::SeqCst), 3);
    }
}
