//! A rate limit on chaincode output mirrored into the sidecar's log: lines
//! per second and bytes per second, each a token bucket that holds a burst
//! (the rate times `burst`). A line over the limit is dropped from the
//! mirror (never from the engine's own log) and counted, for one summary
//! per interval.

use std::time::{Duration, Instant};

use crate::config::Config;

/// How often at most a chaincode's dropped lines are summed up in the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// The limit; a rate of 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub lines_per_second: u64,
    pub bytes_per_second: u64,
    /// How long output may come at the full rate before any of it is
    /// dropped (at least a second's worth is always allowed).
    pub burst: Duration,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        lines_per_second: 0,
        bytes_per_second: 0,
        burst: Duration::ZERO,
    };

    /// `cclaunch.output.maxLinesPerSecond`, `maxBytesPerSecond`, `burst`.
    pub fn of(config: &Config) -> Rate {
        let output = &config.cclaunch.output;
        Rate {
            lines_per_second: output.max_lines_per_second,
            bytes_per_second: output.max_bytes_per_second,
            // Checked when the config was loaded.
            burst: config.output_burst().unwrap_or(Duration::from_secs(30)),
        }
    }
}

struct Bucket {
    /// Per second; `None` = no limit.
    rate: Option<f64>,
    capacity: f64,
    /// May go below zero: a line longer than the bucket passes when it is
    /// full, and its cost is paid off before the next one.
    tokens: f64,
}

impl Bucket {
    fn new(per_second: u64, burst: Duration) -> Bucket {
        let rate = (per_second > 0).then_some(per_second as f64);
        let capacity = rate.unwrap_or(0.0) * burst.as_secs_f64().max(1.0);
        Bucket {
            rate,
            capacity,
            tokens: capacity,
        }
    }

    fn refill(&mut self, elapsed: Duration) {
        if let Some(rate) = self.rate {
            self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(self.capacity);
        }
    }

    fn allows(&self, cost: f64) -> bool {
        self.rate.is_none() || self.tokens >= cost.min(self.capacity)
    }

    fn take(&mut self, cost: f64) {
        if self.rate.is_some() {
            self.tokens -= cost;
        }
    }
}

/// Lines dropped since the last summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
    /// Over how long they were dropped (from the first to now).
    pub over: Duration,
}

/// One chaincode's output through its [`Rate`].
pub struct Limiter {
    lines: Bucket,
    bytes: Bucket,
    last: Instant,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// When the first line not yet summed up was dropped.
    first_drop: Option<Instant>,
    /// When the last summary was made.
    summarised: Option<Instant>,
}

impl Limiter {
    pub fn new(rate: Rate, now: Instant) -> Limiter {
        Limiter {
            lines: Bucket::new(rate.lines_per_second, rate.burst),
            bytes: Bucket::new(rate.bytes_per_second, rate.burst),
            last: now,
            dropped_lines: 0,
            dropped_bytes: 0,
            first_drop: None,
            summarised: None,
        }
    }

    /// Whether a line of `bytes` may be mirrored at `now`; if not, it is
    /// counted as dropped.
    pub fn admit(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.lines.refill(elapsed);
        self.bytes.refill(elapsed);
        let cost = bytes as f64;
        if self.lines.allows(1.0) && self.bytes.allows(cost) {
            self.lines.take(1.0);
            self.bytes.take(cost);
            return true;
        }
        self.dropped_lines += 1;
        self.dropped_bytes += bytes as u64;
        self.first_drop.get_or_insert(now);
        false
    }

    /// When the lines dropped so far are due to be summed up, if any were.
    pub fn summary_due(&self) -> Option<Instant> {
        let first = self.first_drop?;
        Some(match self.summarised {
            Some(last) => (last + SUMMARY_INTERVAL).max(first),
            None => first,
        })
    }

    /// The lines dropped since the last summary (and a new interval begun).
    pub fn summarise(&mut self, now: Instant) -> Option<Dropped> {
        let first = self.first_drop.take()?;
        self.summarised = Some(now);
        let dropped = Dropped {
            lines: std::mem::take(&mut self.dropped_lines),
            bytes: std::mem::take(&mut self.dropped_bytes),
            over: now.saturating_duration_since(first),
        };
        Some(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(lines: u64, bytes: u64, burst_secs: u64) -> Rate {
        Rate {
            lines_per_second: lines,
            bytes_per_second: bytes,
            burst: Duration::from_secs(burst_secs),
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(rate(10, 0, 2), t0);
        let passed = (0..100).filter(|_| limiter.admit(5, t0)).count();
        assert_eq!(passed, 20, "the burst: 2 s at 10 lines/s");
        // A second later, ten more.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..100).filter(|_| limiter.admit(5, t1)).count();
        assert_eq!(passed, 10);
        assert_eq!(
            limiter.summarise(t1),
            Some(Dropped {
                lines: 170,
                bytes: 850,
                over: Duration::from_secs(1)
            })
        );
        assert_eq!(limiter.summarise(t1), None, "nothing dropped since");
    }

    #[test]
    fn bytes_are_limited_and_a_line_longer_than_the_bucket_still_passes() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(rate(0, 100, 1), t0);
        assert!(limiter.admit(60, t0));
        assert!(!limiter.admit(60, t0));
        // A full bucket lets a long line through, then pays it off.
        let t1 = t0 + Duration::from_secs(10);
        assert!(limiter.admit(1000, t1));
        assert!(!limiter.admit(1, t1 + Duration::from_secs(5)));
        assert!(limiter.admit(1, t1 + Duration::from_secs(11)));
    }

    #[test]
    fn unlimited_drops_nothing() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(Rate::UNLIMITED, t0);
        assert!((0..100_000).all(|_| limiter.admit(65536, t0)));
        assert_eq!(limiter.summary_due(), None);
    }

    #[test]
    fn summaries_come_at_most_once_an_interval() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(rate(1, 0, 1), t0);
        assert!(limiter.admit(1, t0));
        assert_eq!(limiter.summary_due(), None);
        assert!(!limiter.admit(1, t0));
        assert_eq!(limiter.summary_due(), Some(t0), "the first at once");
        limiter.summarise(t0);
        let t1 = t0 + Duration::from_millis(100);
        assert!(!limiter.admit(1, t1));
        assert_eq!(limiter.summary_due(), Some(t0 + SUMMARY_INTERVAL));
    }
}
