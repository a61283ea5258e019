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
        let mut end = line.len().min(TAIL_LINE_MAX);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        // Once full, the oldest line's buffer takes the new line: a steady
        // chaincode's tail allocates nothing per line, and the sidecar's
        // heap does not drift under hundreds of them. A buffer far larger
        // than the line (a burst of long lines gone by) is let go.
        let recycled = (lines.len() == self.keep)
            .then(|| lines.pop_front())
            .flatten()
            .filter(|oldest| oldest.capacity() <= (4 * end).max(256));
        let mut kept = match recycled {
            Some(mut oldest) => {
                oldest.clear();
                oldest
            }
            None => String::with_capacity(end + '…'.len_utf8()),
        };
        kept.push_str(&line[..end]);
        if end < line.len() {
            kept.push('…');
        }
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

    #[test]
    fn a_full_tail_keeps_new_lines_in_the_oldest_lines_buffers() {
        let tail = Tail::new(3);
        let oldest = |tail: &Tail| {
            let lines = tail.lines.lock().unwrap();
            (
                lines.front().unwrap().as_ptr(),
                lines.front().unwrap().capacity(),
            )
        };
        let newest = |tail: &Tail| {
            let lines = tail.lines.lock().unwrap();
            (
                lines.back().unwrap().as_ptr(),
                lines.back().unwrap().capacity(),
            )
        };
        for i in 0..3 {
            tail.record(&format!("a line of some length, number {i}"));
        }
        for i in 3..10 {
            let reused = oldest(&tail).0;
            tail.record(&format!("é{i}"));
            assert_eq!(newest(&tail).0, reused, "line {i} allocated");
        }
        assert_eq!(tail.last(3), ["é7", "é8", "é9"]);
        // A long line's buffer is not kept for the short lines after it.
        tail.record(&"x".repeat(1000));
        tail.record("y");
        tail.record("z");
        assert!(oldest(&tail).1 >= 1000);
        tail.record("short");
        assert!(newest(&tail).1 < 256, "{}", newest(&tail).1);
        assert_eq!(tail.last(3), ["y", "z", "short"]);
    }
}
