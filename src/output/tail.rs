//! The last lines a chaincode wrote, kept for error reports.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A tail line longer than this keeps only its start: the tail is for error
/// reports, and must stay small however the chaincode writes.
const TAIL_LINE_MAX: usize = 2048;

/// The last lines a chaincode wrote, for error reports.
#[derive(Debug, Default)]
pub struct Tail {
    lines: Mutex<VecDeque<String>>,
    keep: usize,
}

impl Tail {
    pub fn new(keep: usize) -> Arc<Tail> {
        Arc::new(Tail {
            lines: Mutex::new(VecDeque::with_capacity(keep.min(1024))),
            keep,
        })
    }

    pub(super) fn record(&self, line: &str) {
        if self.keep == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == self.keep {
            lines.pop_front();
        }
        let mut end = line.len().min(TAIL_LINE_MAX);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let kept = if end < line.len() {
            format!("{}…", &line[..end])
        } else {
            line.to_string()
        };
        lines.push_back(kept);
    }

    /// Up to `n` of the most recent lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_newest() {
        let tail = Tail::new(3);
        for i in 0..10 {
            tail.record(&i.to_string());
        }
        assert_eq!(tail.last(2), ["8", "9"]);
        assert_eq!(tail.last(50), ["7", "8", "9"]);
        tail.record(&"x".repeat(100_000));
        assert_eq!(tail.last(1)[0].len(), TAIL_LINE_MAX + "…".len());
    }
}
