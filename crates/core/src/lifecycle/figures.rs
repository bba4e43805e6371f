//! The health figures the lifecycle keeps as it goes: status counts as
//! counters, idle ages from the registry, the connection window as
//! per-second buckets with running totals (seeded once from the store at
//! startup), so the health report costs the same with a million stored
//! rows as with ten.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::registry::Registry;
use crate::clock::Timestamp;
use crate::health::{
    minutes, AgeBounds, AgeDistribution, ConnectionWindow, HealthReport, RecentActivity,
    StatusBreakdown,
};
use crate::session::{SessionRecord, SessionStatus};
use crate::store::{SessionStore, StoreResult};

/// Sessions named in the report's recent activity.
const RECENT: usize = 10;

/// The running figures of the health report.
pub(crate) struct Figures {
    /// Connections and ends within the health window.
    window: Mutex<ConnectionWindow>,
    /// Disconnected sessions in the store, by the running count.
    disconnected: AtomicU64,
    /// The idle-age buckets.
    age_bounds: AgeBounds,
}

impl Figures {
    /// Reads the starting figures from the store.
    pub(crate) async fn load(
        store: &dyn SessionStore,
        now: Timestamp,
        health_window: Duration,
        age_bounds: AgeBounds,
    ) -> StoreResult<Self> {
        let counts = store.status_counts().await?;
        let mut window = ConnectionWindow::new(health_window);
        window.seed(
            store
                .connection_buckets(now.saturating_sub(health_window))
                .await?,
        );
        Ok(Figures {
            window: Mutex::new(window),
            disconnected: AtomicU64::new(counts.disconnected),
            age_bounds,
        })
    }

    fn window(&self) -> std::sync::MutexGuard<'_, ConnectionWindow> {
        self.window.lock().expect("window poisoned")
    }

    pub(crate) fn on_connect(&self, at: Timestamp) {
        self.window().on_connect(at);
    }

    pub(crate) fn on_end(&self, connected_at: Timestamp, at: Timestamp) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
        self.window().on_end(connected_at, at);
    }

    /// A disconnected session became active again.
    pub(crate) fn on_revive(&self) {
        let _ = self
            .disconnected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    pub(crate) fn disconnected(&self) -> u64 {
        self.disconnected.load(Ordering::Relaxed)
    }

    /// The session health report.
    pub(crate) async fn report(
        &self,
        registry: &dyn Registry,
        store: &dyn SessionStore,
        now: Timestamp,
    ) -> StoreResult<HealthReport> {
        let bounds = &self.age_bounds;
        let mut ages = AgeDistribution::default();
        // The latest active sessions, by last activity.
        let mut latest: Vec<SessionRecord> = Vec::with_capacity(RECENT + 1);
        registry.for_each(&mut |live| {
            let last = live.last_activity();
            ages.count(now.since(last), bounds);
            if latest.len() < RECENT || last > latest[latest.len() - 1].last_activity {
                let pos = latest.partition_point(|r| r.last_activity >= last);
                latest.insert(pos, live.record());
                latest.truncate(RECENT);
            }
        });
        latest.extend(
            store
                .latest_by_activity(Some(SessionStatus::Disconnected), RECENT as u32)
                .await?,
        );
        latest.sort_by_key(|r| std::cmp::Reverse(r.last_activity));
        latest.truncate(RECENT);
        let recent_activity = latest
            .into_iter()
            .map(|r| RecentActivity {
                session_id: r.session_id,
                age_minutes: minutes(r.idle(now)),
                uptime_minutes: minutes(r.disconnected_at.unwrap_or(now).since(r.connected_at)),
                client_type: r.client.client_type,
                status: r.status,
            })
            .collect();

        let active = registry.count() as u64;
        let disconnected = self.disconnected();
        let connection_health = self.window().report(now);
        Ok(HealthReport {
            status_breakdown: StatusBreakdown {
                active,
                disconnected,
                total: active + disconnected,
            },
            age_distribution: ages,
            connection_health,
            recent_activity,
            timestamp: now,
        })
    }
}
