//! The Providers page for admins: one card per provider of the fallback chain with its circuit
//! breaker, calls, errors, latency percentiles and a chart of the last hour, and the tenant's
//! token budget. The page has no form or button, so it works without JavaScript; the charts are
//! SVG drawn on the server.

use leptos::prelude::*;
use leptos_meta::Title;

use super::require_role;
use crate::providers::{load_providers, BucketBar, BudgetView, ErrorLine, ProviderCard};

/// Shows the provider chain of the admin's tenant.
#[component]
pub fn ProvidersPage() -> impl IntoView {
    view! {
        <Title text="Providers · Siteline" />
        {require_role("admin", view! { <ProviderOverview /> })}
    }
}

#[component]
fn ProviderOverview() -> impl IntoView {
    let data = Resource::new(|| (), |_| load_providers());

    view! {
        <h1>"Model providers"</h1>
        <p class="pv-lede">
            "Requests go to the first usable provider in this order; the offline rules answer when none is. Numbers cover your tenant and the last hour."
        </p>
        <Transition fallback=|| view! { <p class="page-status">"Loading the providers…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => {
                        let only_offline = data.cards.len() <= 1;
                        let cards = data
                            .cards
                            .into_iter()
                            .enumerate()
                            .map(|(index, card)| view! { <Card position=index + 1 card /> })
                            .collect_view();
                        view! {
                            <Budget budget=data.budget />
                            {only_offline.then(|| view! {
                                <p class="pv-note" data-testid="offline-only">
                                    "No model provider is configured, so the offline rules answer every request. Set MODEL_PROVIDERS and the provider's settings to add one."
                                </p>
                            })}
                            <div class="pv-cards">{cards}</div>
                            <p class="pv-read-at">{format!("Numbers as of {}.", data.read_at)}</p>
                        }
                        .into_any()
                    }
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="providers-error">
                            <h2>"The providers could not be loaded"</h2>
                            <p>{error_text(error)}</p>
                            <p>"Reload the page to try again."</p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// Returns the sentence of a server function error.
fn error_text(error: ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message,
        other => other.to_string(),
    }
}

/// Shows the month's token use against the budget as a bar.
#[component]
fn Budget(budget: BudgetView) -> impl IntoView {
    let summary = format!(
        "{} of {} tokens used in {} (UTC), costing {}.",
        budget.tokens, budget.limit, budget.month, budget.cost
    );
    let unpriced = (budget.unpriced_calls > 0).then(|| {
        view! {
            <p class="pv-muted">
                {format!(
                    "{} calls used models without a price in PROVIDER_PRICES, so the cost leaves them out.",
                    budget.unpriced_calls
                )}
            </p>
        }
    });
    let exhausted = budget.exhausted.then(|| {
        view! {
            <p class="pv-alert" role="status" data-testid="budget-exhausted">
                "The budget is used up: requests go to the offline rules until the month ends."
            </p>
        }
    });
    let bar = budget.percent.map(|percent| {
        let label = format!("{percent:.0} % of the monthly token budget used");
        view! {
            <svg
                class="pv-budget-bar"
                role="img"
                aria-label=label
                viewBox="0 0 100 6"
                preserveAspectRatio="none"
                data-testid="budget-bar"
            >
                <rect class="pv-budget-track" x="0" y="0" width="100" height="6" />
                <rect
                    class="pv-budget-used"
                    class:pv-budget-full=budget.exhausted
                    x="0"
                    y="0"
                    width=format!("{percent:.2}")
                    height="6"
                />
            </svg>
        }
    });

    view! {
        <section class="pv-budget" aria-label="Monthly token budget">
            <h2>"Token budget"</h2>
            {bar}
            <p data-testid="budget-summary">{summary}</p>
            {exhausted}
            {unpriced}
        </section>
    }
}

#[component]
fn Card(position: usize, card: ProviderCard) -> impl IntoView {
    let state_label = match card.breaker_state.as_str() {
        "open" => "Breaker open",
        "half_open" => "Breaker half-open",
        "closed" => "Breaker closed",
        _ => "Always available",
    };
    let state_class = format!("pv-state pv-state-{}", card.breaker_state);
    let errors = card.recent_errors;

    view! {
        <article class="pv-card" data-testid=format!("provider-{}", card.key)>
            <header class="pv-card-head">
                <h2>{format!("{position}. {}", card.name)}</h2>
                <span class=state_class data-testid="breaker-state">{state_label}</span>
            </header>
            <p class="pv-model">"Model: " <code>{card.model}</code></p>
            <p class="pv-breaker">{card.breaker_text}</p>
            <dl class="pv-numbers">
                <div><dt>"Calls, last hour"</dt><dd data-testid="calls">{card.calls}</dd></div>
                <div><dt>"Errors"</dt><dd data-testid="errors">{card.errors}</dd></div>
                <div><dt>"p50"</dt><dd data-testid="p50">{card.p50}</dd></div>
                <div><dt>"p95"</dt><dd data-testid="p95">{card.p95}</dd></div>
                <div><dt>"p99"</dt><dd data-testid="p99">{card.p99}</dd></div>
            </dl>
            <LatencyChart series=card.series.clone() />
            <HourChart series=card.series />
            <RecentErrors errors />
        </article>
    }
}

/// Draws the last hour as twelve five-minute bars: calls, with the failed part in the error
/// colour. Heights are SVG attributes, because the page's CSP forbids inline styles.
#[component]
fn HourChart(series: Vec<BucketBar>) -> impl IntoView {
    const SLOT: i64 = 20;
    const BAR_WIDTH: i64 = 14;
    const BASELINE: i64 = 60;
    const MAX_BAR: i64 = 52;

    let max = series.iter().map(|bar| bar.calls).max().unwrap_or(0).max(1);
    let description = series
        .iter()
        .map(|bar| {
            format!(
                "{}: {} calls, {} errors, p50 {}, p95 {}",
                bar.label, bar.calls, bar.errors, bar.p50, bar.p95
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let label = format!("Calls per 5 minutes, last hour (UTC). {description}");
    let first = series
        .first()
        .map(|bar| bar.label.clone())
        .unwrap_or_default();
    let last = series
        .last()
        .map(|bar| bar.label.clone())
        .unwrap_or_default();
    let width = SLOT * series.len().max(1) as i64;
    let bars = series
        .into_iter()
        .enumerate()
        .map(|(index, bar)| {
            let height = bar.calls * MAX_BAR / max;
            let error_height = bar.errors.min(bar.calls) * MAX_BAR / max;
            let x = index as i64 * SLOT + (SLOT - BAR_WIDTH) / 2;
            let title = format!(
                "{}: {} calls, {} errors, p50 {}, p95 {}",
                bar.label, bar.calls, bar.errors, bar.p50, bar.p95
            );
            view! {
                <g>
                    <title>{title}</title>
                    <rect class="pv-bar" x=x y=BASELINE - height width=BAR_WIDTH height=height />
                    <rect
                        class="pv-bar-error"
                        x=x
                        y=BASELINE - error_height
                        width=BAR_WIDTH
                        height=error_height
                    />
                </g>
            }
        })
        .collect_view();

    view! {
        <figure class="pv-chart">
            <figcaption>"Calls per 5 minutes; failed part in red"</figcaption>
            <svg role="img" aria-label=label viewBox=format!("0 0 {width} 64") data-testid="hour-chart">
                <line class="pv-axis" x1="0" y1=BASELINE x2=width y2=BASELINE />
                {bars}
            </svg>
            <p class="pv-axis-labels">
                <span>{first}</span>
                <span>{last}</span>
            </p>
        </figure>
    }
}

/// The height of the latency chart's plot area, in SVG units.
const LATENCY_PLOT: i64 = 56;

/// Draws the last hour's latency as two lines over the five-minute buckets: p95 above, p50
/// below. A bucket without calls leaves a gap, so a line never invents values between buckets.
#[component]
fn LatencyChart(series: Vec<BucketBar>) -> impl IntoView {
    const SLOT: i64 = 20;
    const TOP: i64 = 4;

    let max = series
        .iter()
        .filter_map(|bar| bar.p95_ms.or(bar.p50_ms))
        .max();
    let Some(max) = max else {
        return view! {
            <p class="pv-muted" data-testid="latency-chart-empty">"No latency to chart: no calls in the last hour."</p>
        }
        .into_any();
    };
    let max = max.max(1);
    let width = SLOT * series.len().max(1) as i64;
    let y = |ms: u32| TOP + LATENCY_PLOT - i64::from(ms) * LATENCY_PLOT / i64::from(max);
    let lines = |pick: fn(&BucketBar) -> Option<u32>, class: &'static str| {
        latency_segments(&series, pick)
            .into_iter()
            .map(|segment| {
                if let [(index, ms)] = segment[..] {
                    let cx = index as i64 * SLOT + SLOT / 2;
                    return view! { <circle class=class cx=cx cy=y(ms) r="2" /> }.into_any();
                }
                let points = segment
                    .iter()
                    .map(|&(index, ms)| format!("{},{}", index as i64 * SLOT + SLOT / 2, y(ms)))
                    .collect::<Vec<_>>()
                    .join(" ");
                view! { <polyline class=class points=points /> }.into_any()
            })
            .collect_view()
    };
    let p95_lines = lines(|bar| bar.p95_ms, "pv-line-p95");
    let p50_lines = lines(|bar| bar.p50_ms, "pv-line-p50");
    let label = format!(
        "Latency per 5 minutes, last hour (UTC): p95 and p50 lines, highest {max} ms. {}",
        series
            .iter()
            .filter(|bar| bar.calls > 0)
            .map(|bar| format!("{}: p50 {}, p95 {}", bar.label, bar.p50, bar.p95))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let baseline = TOP + LATENCY_PLOT;

    view! {
        <figure class="pv-chart">
            <figcaption>
                "Latency per 5 minutes: "
                <span class="pv-key-p95">"p95"</span>
                " and "
                <span class="pv-key-p50">"p50"</span>
                {format!(", top of the scale {max} ms")}
            </figcaption>
            <svg
                role="img"
                aria-label=label
                viewBox=format!("0 0 {width} {}", baseline + 4)
                data-testid="latency-chart"
            >
                <line class="pv-axis" x1="0" y1=baseline x2=width y2=baseline />
                <line class="pv-grid" x1="0" y1=TOP x2=width y2=TOP />
                {p95_lines}
                {p50_lines}
            </svg>
        </figure>
    }
    .into_any()
}

/// Splits one percentile of `series` into runs of consecutive buckets that have a value, each
/// point as (bucket index, milliseconds).
fn latency_segments(
    series: &[BucketBar],
    pick: fn(&BucketBar) -> Option<u32>,
) -> Vec<Vec<(usize, u32)>> {
    let mut segments: Vec<Vec<(usize, u32)>> = Vec::new();
    let mut current = Vec::new();
    for (index, bar) in series.iter().enumerate() {
        match pick(bar) {
            Some(ms) => current.push((index, ms)),
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

#[component]
fn RecentErrors(errors: Vec<ErrorLine>) -> impl IntoView {
    if errors.is_empty() {
        return view! { <p class="pv-muted">"No errors in the last hour."</p> }.into_any();
    }
    view! {
        <details class="pv-errors">
            <summary>{format!("Newest errors ({})", errors.len())}</summary>
            <ul>
                {errors
                    .into_iter()
                    .map(|error| view! {
                        <li>
                            <span class="pv-error-meta">{format!("{} · {}", error.at, error.class)}</span>
                            <span class="pv-error-text">{error.error}</span>
                        </li>
                    })
                    .collect_view()}
            </ul>
        </details>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(p50_ms: Option<u32>) -> BucketBar {
        BucketBar {
            label: "10:00".to_string(),
            calls: i64::from(p50_ms.is_some()),
            errors: 0,
            p50: "-".to_string(),
            p95: "-".to_string(),
            p50_ms,
            p95_ms: p50_ms.map(|ms| ms * 2),
        }
    }

    #[test]
    fn latency_segments_break_at_empty_buckets() {
        let series = vec![
            bar(Some(100)),
            bar(Some(120)),
            bar(None),
            bar(Some(90)),
            bar(None),
            bar(None),
        ];
        assert_eq!(
            latency_segments(&series, |bar| bar.p50_ms),
            vec![vec![(0, 100), (1, 120)], vec![(3, 90)]]
        );
        assert_eq!(
            latency_segments(&series, |bar| bar.p95_ms),
            vec![vec![(0, 200), (1, 240)], vec![(3, 180)]]
        );
        assert!(latency_segments(&[bar(None)], |bar| bar.p50_ms).is_empty());
    }
}
