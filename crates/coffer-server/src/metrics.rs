//! Prometheus metrics served at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabel {
    schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaceLabel {
    place: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    notification: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    schedule: String,
    outcome: String,
}

fn duration_histogram() -> Histogram {
    // 1 s … ≈ 18 h.
    Histogram::new(exponential_buckets(1.0, 3.0, 11))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    durations: Family<KindLabel, Histogram, fn() -> Histogram>,
    bytes_written: Counter,
    last_success: Family<ComponentLabel, Gauge<f64, AtomicU64>>,
    next_run: Family<ScheduleLabel, Gauge<f64, AtomicU64>>,
    runs: Family<RunLabels, Counter>,
    retention_deleted: Counter,
    drill_seconds: Family<ComponentLabel, Gauge<f64, AtomicU64>>,
    last_verified: Family<ComponentLabel, Gauge<f64, AtomicU64>>,
    notifications: Family<SendLabels, Counter>,
    target_up: Family<TargetLabel, Gauge>,
    repository_size: Family<TargetLabel, Gauge<f64, AtomicU64>>,
    free_space: Family<PlaceLabel, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coffer");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs finished, by kind (backup, restore) and final status",
            jobs.clone(),
        );
        let durations = Family::<KindLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "job_duration_seconds",
            "Duration of finished jobs",
            durations.clone(),
        );
        let bytes_written = Counter::default();
        registry.register(
            "bytes_written",
            "Bytes added to repositories by backups (after deduplication and compression)",
            bytes_written.clone(),
        );
        let last_success = Family::<ComponentLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When each component was last part of a READY backup (Unix time)",
            last_success.clone(),
        );
        let next_run = Family::<ScheduleLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "schedule_next_run_timestamp_seconds",
            "When each enabled schedule is next due (Unix time, on the scheduler's clock)",
            next_run.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "schedule_runs",
            "What schedules' due times became: started, skipped, missed, failed (to start)",
            runs.clone(),
        );
        let retention_deleted = Counter::default();
        registry.register(
            "retention_deleted",
            "Backups deleted by retention policies",
            retention_deleted.clone(),
        );
        let drill_seconds = Family::<ComponentLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "restore_drill_duration_seconds",
            "How long the last passing restore drill of each component took: its measured recovery time",
            drill_seconds.clone(),
        );
        let last_verified = Family::<ComponentLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_verified_timestamp_seconds",
            "When a restore drill last proved a backup of each component (Unix time)",
            last_verified.clone(),
        );
        let notifications = Family::<SendLabels, Counter>::default();
        registry.register(
            "notifications",
            "Messages to each notification destination, by outcome (delivered, failed after retries)",
            notifications.clone(),
        );
        let target_up = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "target_up",
            "Whether the last probe reached each target's repository (1) or not (0)",
            target_up.clone(),
        );
        let repository_size = Family::<TargetLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "repository_size_bytes",
            "Bytes stored in each target's repository at the last probe",
            repository_size.clone(),
        );
        let free_space = Family::<PlaceLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "free_space_bytes",
            "Bytes free at the last probe: the staging area (place=\"staging\") and each local \
             target (place=\"target:<name>\")",
            free_space.clone(),
        );
        Self {
            registry,
            jobs,
            target_up,
            repository_size,
            free_space,
            notifications,
            drill_seconds,
            last_verified,
            durations,
            bytes_written,
            last_success,
            next_run,
            runs,
            retention_deleted,
        }
    }

    /// Records a finished job.
    pub fn job_finished(&self, kind: &str, status: &str, seconds: f64, bytes_added: u64) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .observe(seconds);
        self.bytes_written.inc_by(bytes_added);
    }

    /// Records that `component` is now in a READY backup.
    pub fn component_succeeded(&self, component: &str) {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        self.last_success
            .get_or_create(&ComponentLabel {
                component: component.to_owned(),
            })
            .set(now);
    }

    /// Records when `schedule` is next due (`None`: never, or disabled).
    pub fn schedule_next_run(&self, schedule: &str, at: Option<i64>) {
        let label = ScheduleLabel {
            schedule: schedule.to_owned(),
        };
        match at {
            Some(t) => {
                self.next_run.get_or_create(&label).set(t as f64);
            }
            None => {
                self.next_run.remove(&label);
            }
        }
    }

    /// Counts what a due time of `schedule` became.
    pub fn schedule_run(&self, schedule: &str, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                schedule: schedule.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Records a component a drill proved in `seconds`, at `at` (the drill
    /// as a whole passed) or not.
    pub fn drilled(&self, component: &str, seconds: f64, at: Option<i64>) {
        let label = ComponentLabel {
            component: component.to_owned(),
        };
        self.drill_seconds.get_or_create(&label).set(seconds);
        if let Some(t) = at {
            self.last_verified.get_or_create(&label).set(t as f64);
        }
    }

    /// Counts a message to `notification`.
    pub fn notification_sent(&self, notification: &str, delivered: bool) {
        self.notifications
            .get_or_create(&SendLabels {
                notification: notification.to_owned(),
                outcome: if delivered { "delivered" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Records a probe of `target`: its repository's size, or unreachable.
    pub fn target_probed(&self, target: &str, size: Option<u64>) {
        let label = TargetLabel {
            target: target.to_owned(),
        };
        self.target_up
            .get_or_create(&label)
            .set(i64::from(size.is_some()));
        if let Some(n) = size {
            self.repository_size.get_or_create(&label).set(n as f64);
        }
    }

    /// Records the free bytes of `place` (`staging`, `target:<name>`).
    pub fn free_space(&self, place: &str, bytes: u64) {
        self.free_space
            .get_or_create(&PlaceLabel {
                place: place.to_owned(),
            })
            .set(bytes as f64);
    }

    /// Counts backups retention deleted.
    pub fn retention_deleted(&self, n: u64) {
        self.retention_deleted.inc_by(n);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_jobs_durations_bytes_and_last_success() {
        let m = Metrics::new();
        m.job_finished("backup", "READY", 3.0, 1024);
        m.component_succeeded("db");
        let text = m.render();
        assert!(
            text.contains(r#"coffer_jobs_total{kind="backup",status="READY"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("coffer_job_duration_seconds_count{kind=\"backup\"} 1"),
            "{text}"
        );
        assert!(text.contains("coffer_bytes_written_total 1024"), "{text}");
        assert!(
            text.contains("coffer_last_success_timestamp_seconds{component=\"db\"}"),
            "{text}"
        );
    }
}
