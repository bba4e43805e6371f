//! The session health report (`GET /api/mcp/sessions/health`), in the
//! reference system's shape, and the sliding 24 h window behind its
//! `connection_health` figures.
//!
//! Every figure is maintained incrementally or read from the live registry,
//! so a report costs the same with a million rows in the store as with ten.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::session::SessionStatus;
use crate::store::ConnectionBucket;

/// Idle-age bucket bounds: idle below `aging_after` is healthy, below
/// `stale_after` aging, else stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgeBounds {
    pub aging_after: Duration,
    pub stale_after: Duration,
}

impl Default for AgeBounds {
    fn default() -> Self {
        AgeBounds {
            aging_after: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthReport {
    pub status_breakdown: StatusBreakdown,
    pub age_distribution: AgeDistribution,
    pub connection_health: ConnectionHealth,
    pub recent_activity: Vec<RecentActivity>,
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct StatusBreakdown {
    pub active: u64,
    pub disconnected: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AgeDistribution {
    pub healthy: u64,
    pub aging: u64,
    pub stale: u64,
}

impl AgeDistribution {
    pub fn count(&mut self, idle: Duration, bounds: &AgeBounds) {
        if idle < bounds.aging_after {
            self.healthy += 1;
        } else if idle < bounds.stale_after {
            self.aging += 1;
        } else {
            self.stale += 1;
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ConnectionHealth {
    pub avg_duration_seconds: f64,
    pub sessions_per_hour: f64,
    pub disconnect_rate_percent: f64,
    pub total_sessions_24h: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecentActivity {
    pub session_id: SessionId,
    pub client_type: String,
    pub status: SessionStatus,
    /// Minutes since the last sign of life.
    pub age_minutes: f64,
    /// Minutes from connection to its end, or to now while active.
    pub uptime_minutes: f64,
}

fn round(value: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (value * f).round() / f
}

pub(crate) fn minutes(d: Duration) -> f64 {
    round(d.as_secs_f64() / 60.0, 1)
}

/// Sessions connected within the last `span`, kept as per-second buckets
/// with running totals, so a report is O(1) amortised.
#[derive(Debug)]
pub struct ConnectionWindow {
    span: Duration,
    buckets: BTreeMap<i64, ConnectionBucket>,
    connected: u64,
    ended: u64,
    ended_duration_ms: i128,
    active_connected_at_ms: i128,
}

impl ConnectionWindow {
    pub fn new(span: Duration) -> Self {
        ConnectionWindow {
            span,
            buckets: BTreeMap::new(),
            connected: 0,
            ended: 0,
            ended_duration_ms: 0,
            active_connected_at_ms: 0,
        }
    }

    pub fn span(&self) -> Duration {
        self.span
    }

    /// Seeds the window from the store's per-second aggregates.
    pub fn seed(&mut self, buckets: impl IntoIterator<Item = ConnectionBucket>) {
        for b in buckets {
            self.connected += b.connected;
            self.ended += b.ended;
            self.ended_duration_ms += b.ended_duration_ms as i128;
            self.active_connected_at_ms += b.active_connected_at_ms as i128;
            let slot = self.buckets.entry(b.second).or_insert(ConnectionBucket {
                second: b.second,
                ..Default::default()
            });
            slot.connected += b.connected;
            slot.ended += b.ended;
            slot.ended_duration_ms += b.ended_duration_ms;
            slot.active_connected_at_ms += b.active_connected_at_ms;
        }
    }

    pub fn on_connect(&mut self, connected_at: Timestamp) {
        let second = connected_at.as_millis().div_euclid(1000);
        let slot = self.buckets.entry(second).or_insert(ConnectionBucket {
            second,
            ..Default::default()
        });
        slot.connected += 1;
        slot.active_connected_at_ms += connected_at.as_millis();
        self.connected += 1;
        self.active_connected_at_ms += connected_at.as_millis() as i128;
    }

    pub fn on_end(&mut self, connected_at: Timestamp, ended_at: Timestamp) {
        let second = connected_at.as_millis().div_euclid(1000);
        // A session that connected before the window is not counted in it.
        let Some(slot) = self.buckets.get_mut(&second) else {
            return;
        };
        let duration = ended_at.since(connected_at).as_millis() as i64;
        slot.ended += 1;
        slot.ended_duration_ms += duration;
        slot.active_connected_at_ms -= connected_at.as_millis();
        self.ended += 1;
        self.ended_duration_ms += duration as i128;
        self.active_connected_at_ms -= connected_at.as_millis() as i128;
    }

    /// The figures over sessions connected in `(now - span, now]`.
    pub fn report(&mut self, now: Timestamp) -> ConnectionHealth {
        let first_second = now.saturating_sub(self.span).as_millis().div_euclid(1000);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= first_second {
                break;
            }
            let b = entry.remove();
            self.connected -= b.connected;
            self.ended -= b.ended;
            self.ended_duration_ms -= b.ended_duration_ms as i128;
            self.active_connected_at_ms -= b.active_connected_at_ms as i128;
        }
        let n = self.connected;
        if n == 0 {
            return ConnectionHealth::default();
        }
        let active = (n - self.ended) as i128;
        let active_ms = active * now.as_millis() as i128 - self.active_connected_at_ms;
        let total_ms = (self.ended_duration_ms + active_ms.max(0)) as f64;
        let hours = self.span.as_secs_f64() / 3600.0;
        ConnectionHealth {
            avg_duration_seconds: round(total_ms / n as f64 / 1000.0, 1),
            sessions_per_hour: round(n as f64 / hours, 2),
            disconnect_rate_percent: round(self.ended as f64 * 100.0 / n as f64, 1),
            total_sessions_24h: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    #[test]
    fn empty_window_reports_zeros() {
        let mut w = ConnectionWindow::new(DAY);
        assert_eq!(w.report(t(1_000_000)), ConnectionHealth::default());
    }

    #[test]
    fn figures_follow_the_reference_definitions() {
        let mut w = ConnectionWindow::new(DAY);
        let now = t(100_000);
        // Two sessions: one ran 60 s and ended, one active for 120 s.
        w.on_connect(t(99_000));
        w.on_end(t(99_000), t(99_060));
        w.on_connect(t(99_880));
        let r = w.report(now);
        assert_eq!(r.total_sessions_24h, 2);
        assert_eq!(r.disconnect_rate_percent, 50.0);
        assert_eq!(r.sessions_per_hour, 0.08);
        assert_eq!(r.avg_duration_seconds, 90.0);
    }

    #[test]
    fn sessions_leave_the_window_after_a_day() {
        let mut w = ConnectionWindow::new(DAY);
        w.on_connect(t(1_000));
        w.on_connect(t(50_000));
        assert_eq!(w.report(t(80_000)).total_sessions_24h, 2);
        let later = t(1_000 + 24 * 3600 + 1);
        assert_eq!(w.report(later).total_sessions_24h, 1);
        // Ending a session that already left the window changes nothing.
        w.on_end(t(1_000), later);
        assert_eq!(w.report(later).disconnect_rate_percent, 0.0);
    }

    #[test]
    fn seeding_matches_live_counting() {
        let mut live = ConnectionWindow::new(DAY);
        live.on_connect(t(10));
        live.on_connect(t(10));
        live.on_end(t(10), t(40));
        let mut seeded = ConnectionWindow::new(DAY);
        seeded.seed([ConnectionBucket {
            second: 10,
            connected: 2,
            ended: 1,
            ended_duration_ms: 30_000,
            active_connected_at_ms: 10_000,
        }]);
        assert_eq!(live.report(t(100)), seeded.report(t(100)));
    }

    #[test]
    fn age_buckets_use_bounds() {
        let bounds = AgeBounds::default();
        let mut d = AgeDistribution::default();
        for secs in [0, 299, 300, 599, 600, 5000] {
            d.count(Duration::from_secs(secs), &bounds);
        }
        assert_eq!((d.healthy, d.aging, d.stale), (2, 2, 2));
    }
}
