//! Operational metrics, declared once and rendered in Prometheus' text format:
//! build durations (by success and reuse), launch durations, lines mirrored
//! and dropped, and engine errors. Running chaincodes are counted at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds in seconds: builds take seconds to minutes, launches less.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Builds by (success, reused): [ok fresh, ok reused, failed].
static BUILDS: Mutex<[Option<Histogram>; 3]> = Mutex::new([None, None, None]);
static LAUNCHES: Mutex<Option<Histogram>> = Mutex::new(None);
static LINES: AtomicU64 = AtomicU64::new(0);
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);
static ENGINE_ERRORS: AtomicU64 = AtomicU64::new(0);

pub fn build_finished(took: Duration, success: bool, reused: bool) {
    let slot = match (success, reused) {
        (true, false) => 0,
        (true, true) => 1,
        (false, _) => 2,
    };
    let mut builds = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
    builds[slot]
        .get_or_insert_with(Histogram::default)
        .observe(took.as_secs_f64());
}

pub fn launch_finished(took: Duration) {
    let mut launches = LAUNCHES.lock().unwrap_or_else(|p| p.into_inner());
    launches
        .get_or_insert_with(Histogram::default)
        .observe(took.as_secs_f64());
}

pub fn lines_mirrored(n: u64) {
    LINES.fetch_add(n, Ordering::Relaxed);
}

/// Chaincode output lines the mirror dropped (over its rate limit).
pub fn lines_dropped(n: u64) {
    LINES_DROPPED.fetch_add(n, Ordering::Relaxed);
}

pub fn engine_error() {
    ENGINE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// The Prometheus text exposition of every metric.
pub fn render(running_chaincodes: usize) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP cclaunch_build_duration_seconds Time to build (or find) a chaincode image.\n",
    );
    out.push_str("# TYPE cclaunch_build_duration_seconds histogram\n");
    {
        let builds = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
        let empty = Histogram::default();
        for (slot, labels) in [
            (0, "success=\"true\",reused=\"false\""),
            (1, "success=\"true\",reused=\"true\""),
            (2, "success=\"false\",reused=\"false\""),
        ] {
            builds[slot].as_ref().unwrap_or(&empty).render(
                &mut out,
                "cclaunch_build_duration_seconds",
                labels,
            );
        }
    }
    out.push_str("# HELP cclaunch_launch_duration_seconds Time to start a chaincode container (create, TLS upload, start).\n");
    out.push_str("# TYPE cclaunch_launch_duration_seconds histogram\n");
    {
        let launches = LAUNCHES.lock().unwrap_or_else(|p| p.into_inner());
        launches.as_ref().unwrap_or(&Histogram::default()).render(
            &mut out,
            "cclaunch_launch_duration_seconds",
            "",
        );
    }
    let _ = writeln!(out, "# HELP cclaunch_running_chaincodes Chaincode containers of this peer that are running.\n# TYPE cclaunch_running_chaincodes gauge\ncclaunch_running_chaincodes {running_chaincodes}");
    let _ = writeln!(out, "# HELP cclaunch_lines_mirrored_total Output lines mirrored from chaincode containers.\n# TYPE cclaunch_lines_mirrored_total counter\ncclaunch_lines_mirrored_total {}", LINES.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP cclaunch_chaincode_output_lines_dropped_total Chaincode output lines not mirrored into the log: over cclaunch.output's rate limit (the engine's log keeps them).\n# TYPE cclaunch_chaincode_output_lines_dropped_total counter\ncclaunch_chaincode_output_lines_dropped_total {}", LINES_DROPPED.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP cclaunch_engine_errors_total Container engine calls that failed.\n# TYPE cclaunch_engine_errors_total counter\ncclaunch_engine_errors_total {}", ENGINE_ERRORS.load(Ordering::Relaxed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut h = Histogram::default();
        h.observe(0.2);
        h.observe(3.0);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.25\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 2\n"), "{out}");
    }
}
