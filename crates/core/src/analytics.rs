//! Analytics: the figures behind the dashboard's charts and the reference
//! system's `/analytics` and `/usage/summary` reports, offered by the
//! [`Analytics`] service. The store aggregates (see
//! [`AnalyticsStore`]); this module picks the windows, fills the gaps
//! between non-empty buckets and derives rates and comparisons.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{SharedClock, Timestamp};
use crate::store::{AnalyticsStore, Latency, RequestBucket, RequestTotals, StoreResult, Window};

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

// ------------------------------------------------------------------ reports

/// The span a report covers.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    pub days: u32,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Period {
    fn of(days: u32, w: Window) -> Period {
        Period {
            days,
            start: w.since,
            end: w.until,
        }
    }
}

/// `GET /api/mcp/analytics`, in the reference system's shape.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsReport {
    pub period: Period,
    pub trends: Trends,
    pub ratios: Ratios,
    pub response_times: ResponseTimes,
    /// Present when a comparison was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<BTreeMap<&'static str, Change>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trends {
    pub daily: Vec<DailyTrend>,
    pub hourly: Vec<HourlyTrend>,
}

/// One UTC day. sessiongate sees no LLM tokens, so `tokens` and `cost` stay 0;
/// they are kept for the reference system's consumers.
#[derive(Debug, Clone, Serialize)]
pub struct DailyTrend {
    pub date: String,
    pub requests: u64,
    pub errors: u64,
    pub tokens: u64,
    pub cost: f64,
    /// Percent, one decimal; 100 on a day without requests.
    pub success_rate: f64,
}

/// One hour (its start), over the period.
#[derive(Debug, Clone, Serialize)]
pub struct HourlyTrend {
    pub hour: Timestamp,
    pub requests: u64,
    /// Mean duration in milliseconds.
    pub avg_duration: f64,
}

/// Requests by outcome over the period; `success_rate` in percent.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub success: u64,
    pub error: u64,
    /// Always 0: a request that times out is logged as an error.
    pub timeout: u64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseTimes {
    pub by_tool: Vec<ToolTimes>,
    pub overall_avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One tool's `tools/call` durations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct ToolTimes {
    pub tool: String,
    pub count: u64,
    pub errors: u64,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Not in the server's tool catalog: a name a client tried (set by the
    /// API, which knows the catalog; absent when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// A figure now and in the previous period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub current: f64,
    pub previous: f64,
    /// `null` when the previous figure is 0.
    pub change_percent: Option<f64>,
}

impl Change {
    fn of(current: f64, previous: f64) -> Change {
        Change {
            current,
            previous,
            change_percent: (previous != 0.0)
                .then(|| round1((current - previous) / previous * 100.0)),
        }
    }
}

/// The reports, as of the clock's now, over what the store aggregates.
#[derive(Clone)]
pub struct Analytics {
    store: Arc<dyn AnalyticsStore>,
    clock: SharedClock,
}

impl Analytics {
    pub fn new(store: Arc<dyn AnalyticsStore>, clock: SharedClock) -> Self {
        Analytics { store, clock }
    }

    /// The report over the `days` UTC days ending today.
    pub async fn report(&self, days: u32, compare: bool) -> StoreResult<AnalyticsReport> {
        let window = Window::aligned(self.clock.now(), DAY, days);
        let daily = self.store.request_buckets(window, DAY).await?;
        let hourly = self.store.request_buckets(window, HOUR).await?;
        let totals = self.store.request_totals(window).await?;
        let latency = self.store.latency(window).await?;
        let comparison = if compare {
            let before = self.store.request_totals(window.previous()).await?;
            Some(compare_totals(&totals, &before))
        } else {
            None
        };

        let daily = fill(window, DAY, &daily)
            .map(|(start, b)| DailyTrend {
                date: start.to_rfc3339()[..10].to_string(),
                requests: b.requests,
                errors: b.errors,
                tokens: 0,
                cost: 0.0,
                success_rate: success_rate(b.requests, b.errors),
            })
            .collect();
        let hourly = fill(window, HOUR, &hourly)
            .map(|(hour, b)| HourlyTrend {
                hour,
                requests: b.requests,
                avg_duration: mean_ms(b.duration_us, b.requests),
            })
            .collect();

        let overall = latency.iter().find(|l| l.tool.is_none());
        let response_times = ResponseTimes {
            by_tool: latency
                .iter()
                .filter_map(|l| l.tool.clone().map(|tool| tool_times(tool, l)))
                .collect(),
            overall_avg: mean_ms(totals.duration_us, totals.requests),
            p50: overall.map_or(0.0, |l| ms(l.p50_us)),
            p95: overall.map_or(0.0, |l| ms(l.p95_us)),
            p99: overall.map_or(0.0, |l| ms(l.p99_us)),
        };
        Ok(AnalyticsReport {
            period: Period::of(days, window),
            trends: Trends { daily, hourly },
            ratios: Ratios {
                success: totals.requests - totals.errors.min(totals.requests),
                error: totals.errors,
                timeout: 0,
                success_rate: success_rate(totals.requests, totals.errors),
            },
            response_times,
            comparison,
        })
    }
}

fn compare_totals(now: &RequestTotals, before: &RequestTotals) -> BTreeMap<&'static str, Change> {
    BTreeMap::from([
        (
            "requests",
            Change::of(now.requests as f64, before.requests as f64),
        ),
        (
            "errors",
            Change::of(now.errors as f64, before.errors as f64),
        ),
        (
            "success_rate",
            Change::of(
                success_rate(now.requests, now.errors),
                success_rate(before.requests, before.errors),
            ),
        ),
        (
            "avg_duration_ms",
            Change::of(
                mean_ms(now.duration_us, now.requests),
                mean_ms(before.duration_us, before.requests),
            ),
        ),
        (
            "unique_sessions",
            Change::of(now.unique_sessions as f64, before.unique_sessions as f64),
        ),
    ])
}

/// `GET /api/mcp/usage/summary`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageSummary {
    pub period: Period,
    pub summary: UsageTotals,
    pub by_tool: BTreeMap<String, ToolUsage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageTotals {
    pub total_requests: u64,
    pub total_tokens: u64,
    pub total_cost: f64,
    pub errors: u64,
    pub success_rate: f64,
    pub avg_duration_ms: f64,
    pub unique_sessions: u64,
    /// Stateless (2026-07-28) clients, which have no session.
    pub unique_clients: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolUsage {
    pub count: u64,
    pub tokens: u64,
    pub cost: f64,
    pub errors: u64,
    pub avg_ms: f64,
    /// Not in the server's tool catalog (see [`ToolTimes::unknown`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

impl Analytics {
    /// Usage over the `days` UTC days ending today.
    pub async fn usage(&self, days: u32) -> StoreResult<UsageSummary> {
        let window = Window::aligned(self.clock.now(), DAY, days);
        let totals = self.store.request_totals(window).await?;
        let latency = self.store.latency(window).await?;
        Ok(UsageSummary {
            period: Period::of(days, window),
            summary: UsageTotals {
                total_requests: totals.requests,
                total_tokens: 0,
                total_cost: 0.0,
                errors: totals.errors,
                success_rate: success_rate(totals.requests, totals.errors),
                avg_duration_ms: mean_ms(totals.duration_us, totals.requests),
                unique_sessions: totals.unique_sessions,
                unique_clients: totals.unique_clients,
            },
            by_tool: latency
                .into_iter()
                .filter_map(|l| {
                    let usage = ToolUsage {
                        count: l.count,
                        tokens: 0,
                        cost: 0.0,
                        errors: l.errors,
                        avg_ms: mean_ms(l.sum_us, l.count),
                        unknown: false,
                    };
                    l.tool.map(|t| (t, usage))
                })
                .collect(),
        })
    }
}

/// `GET /api/mcp/sessions/timeline`: sessions and traffic over recent hours.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub hours: u32,
    pub bucket_seconds: u64,
    /// Oldest first; `t` is the bucket's start.
    pub points: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub t: Timestamp,
    /// Sessions active at the bucket's end (at `now` for the last one).
    pub active: u64,
    pub connected: u64,
    pub disconnected: u64,
    pub requests: u64,
    pub errors: u64,
}

/// Bucket lengths a timeline may use; the smallest giving at most
/// [`MAX_POINTS`] points wins.
const TIMELINE_BUCKETS: [u64; 7] = [60, 300, 900, 1_800, 3_600, 7_200, 21_600];
const MAX_POINTS: u64 = 100;

impl Analytics {
    /// The timeline of the last `hours` hours.
    pub async fn timeline(&self, hours: u32) -> StoreResult<Timeline> {
        let span = u64::from(hours) * 3_600;
        let seconds = TIMELINE_BUCKETS
            .into_iter()
            .find(|b| span.div_ceil(*b) <= MAX_POINTS)
            .unwrap_or(TIMELINE_BUCKETS[TIMELINE_BUCKETS.len() - 1]);
        let bucket = Duration::from_secs(seconds);
        let window = Window::aligned(self.clock.now(), bucket, span.div_ceil(seconds) as u32);
        let flow = self.store.session_flow(window, bucket).await?;
        let requests = self.store.request_buckets(window, bucket).await?;

        let mut connected = sparse(&flow.connected);
        let mut disconnected = sparse(&flow.disconnected);
        let mut active = flow.active_at_start as i64;
        let points = fill(window, bucket, &requests)
            .enumerate()
            .map(|(i, (t, r))| {
                let c = connected.next_at(i as u64);
                let d = disconnected.next_at(i as u64);
                active += c as i64 - d as i64;
                TimelinePoint {
                    t,
                    active: active.max(0) as u64,
                    connected: c,
                    disconnected: d,
                    requests: r.requests,
                    errors: r.errors,
                }
            })
            .collect();
        Ok(Timeline {
            hours,
            bucket_seconds: seconds,
            points,
        })
    }
}

/// Every bucket of `window`, empty ones included, with its start.
fn fill(
    window: Window,
    bucket: Duration,
    present: &[RequestBucket],
) -> impl Iterator<Item = (Timestamp, RequestBucket)> + '_ {
    let mut present = present.iter().peekable();
    (0..window.buckets(bucket)).map(move |index| {
        let found = present.next_if(|b| b.index == index).copied();
        let b = found.unwrap_or(RequestBucket {
            index,
            ..RequestBucket::default()
        });
        (window.start_of(bucket, index), b)
    })
}

/// A cursor over `(index, count)` pairs sorted by index.
struct Sparse<'a>(std::iter::Peekable<std::slice::Iter<'a, (u64, u64)>>);

fn sparse(pairs: &[(u64, u64)]) -> Sparse<'_> {
    Sparse(pairs.iter().peekable())
}

impl Sparse<'_> {
    fn next_at(&mut self, index: u64) -> u64 {
        self.0.next_if(|(i, _)| *i == index).map_or(0, |(_, n)| *n)
    }
}

fn tool_times(tool: String, l: &Latency) -> ToolTimes {
    ToolTimes {
        tool,
        count: l.count,
        errors: l.errors,
        avg_ms: mean_ms(l.sum_us, l.count),
        min_ms: ms(l.min_us),
        max_ms: ms(l.max_us),
        p50: ms(l.p50_us),
        p95: ms(l.p95_us),
        p99: ms(l.p99_us),
        unknown: false,
    }
}

fn ms(us: i64) -> f64 {
    round2(us as f64 / 1000.0)
}

fn mean_ms(sum_us: i64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        round2(sum_us as f64 / count as f64 / 1000.0)
    }
}

fn success_rate(requests: u64, errors: u64) -> f64 {
    if requests == 0 {
        100.0
    } else {
        round1((requests - errors.min(requests)) as f64 / requests as f64 * 100.0)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_windows_end_after_the_bucket_holding_now() {
        let now = Timestamp::from_millis(86_400_000 * 3 + 5_000);
        let w = Window::aligned(now, DAY, 2);
        assert_eq!(w.until.as_millis(), 86_400_000 * 4);
        assert_eq!(w.since.as_millis(), 86_400_000 * 2);
        assert_eq!(w.previous().since.as_millis(), 0);
        assert_eq!(w.buckets(HOUR), 48);
    }

    #[test]
    fn fill_keeps_present_buckets_and_zeroes_the_rest() {
        let w = Window::aligned(Timestamp::from_millis(0), Duration::from_secs(60), 4);
        let present = [
            RequestBucket {
                index: 1,
                requests: 3,
                errors: 1,
                duration_us: 30,
            },
            RequestBucket {
                index: 3,
                requests: 1,
                errors: 0,
                duration_us: 5,
            },
        ];
        let got: Vec<u64> = fill(w, Duration::from_secs(60), &present)
            .map(|(_, b)| b.requests)
            .collect();
        assert_eq!(got, [0, 3, 0, 1]);
    }

    #[test]
    fn rates_and_changes_round_and_never_divide_by_zero() {
        assert_eq!(success_rate(0, 0), 100.0);
        assert_eq!(success_rate(3, 1), 66.7);
        assert_eq!(Change::of(5.0, 0.0).change_percent, None);
        assert_eq!(Change::of(15.0, 10.0).change_percent, Some(50.0));
        assert_eq!(mean_ms(3_000, 2), 1.5);
    }
}
