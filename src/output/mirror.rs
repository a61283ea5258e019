//! The mirror loop: a container's output, line by line, into its logger.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::position::{unstamp, Stream};
use super::{ChaincodeLogger, Line, Lines, Position, Skip};
use crate::printable::{self, Sgr};
use crate::rate::{Limiter, Rate};
use crate::runtime::{Output, OutputStream};

/// Mirrors a container's output until it closes, publishing the position
/// after each frame (for checkpoints). With `skip`, the frames come from the
/// engine's log with timestamps, and what an earlier mirror logged is
/// skipped. Lines over `rate` are dropped (still counted in the position,
/// so a restart resumes right after them), summed up in the log once per
/// interval. Returns the number of lines mirrored.
pub async fn mirror(
    container: &str,
    mut output: OutputStream,
    max_line: usize,
    rate: Rate,
    skip: Option<Skip>,
    progress: tokio::sync::watch::Sender<Position>,
) -> u64 {
    let logger = ChaincodeLogger::new(container);
    let mut stdout = Lines::new(max_line);
    let mut stderr = Lines::new(max_line);
    let mut at = Position::default();
    // Per stream: when the engine logged the latest frame.
    let (mut out_stamp, mut err_stamp) = (None, None);
    // Shared by `emit` and the summary tick, one at a time.
    let limiter = Mutex::new(Limiter::new(rate, Instant::now()));
    let limiter = || limiter.lock().unwrap_or_else(|p| p.into_inner());
    // Read between frames while `emit` holds the closure's borrows:
    // lines mirrored, and lines handled past what was skipped.
    let count = std::sync::atomic::AtomicU64::new(0);
    let fresh = std::sync::atomic::AtomicU64::new(0);
    let emit = |line: Line, at: &mut Position, stream: Stream, stamp: Option<Duration>| {
        let seen = at.count(stream, &line.text);
        if let Some(skip) = skip {
            let intact = at.first(stream).is_some() && at.first(stream) == skip.at.first(stream);
            let logged_before = stamp.is_none_or(|t| t <= skip.saved_at);
            if seen <= skip.at.seen(stream) && (intact || logged_before) {
                return;
            }
        }
        fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !limiter().admit(line.text.len(), Instant::now()) {
            crate::metrics::lines_dropped(1);
            return;
        }
        crate::metrics::lines_mirrored(1);
        logger.info(&printable::render(&line.text, Sgr::Strip));
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let past_skip = || skip.is_none() || fresh.load(std::sync::atomic::Ordering::Relaxed) > 0;
    loop {
        let due = limiter().summary_due();
        let frame = tokio::select! {
            frame = output.next() => frame,
            () = sleep_until(due) => {
                summarise(container, &mut limiter());
                continue;
            }
        };
        let Some(frame) = frame else { break };
        match frame {
            Ok(Output::Stdout(bytes)) => {
                let bytes = unstamp(&bytes, skip.is_some(), &mut out_stamp);
                stdout.push(bytes, |l| emit(l, &mut at, Stream::Stdout, out_stamp))
            }
            Ok(Output::Stderr(bytes)) => {
                let bytes = unstamp(&bytes, skip.is_some(), &mut err_stamp);
                stderr.push(bytes, |l| emit(l, &mut at, Stream::Stderr, err_stamp))
            }
            Err(e) => {
                tracing::error!(container, error = %e, "error reading container output");
                break;
            }
        }
        publish(&progress, at, past_skip());
    }
    stdout.finish(|l| emit(l, &mut at, Stream::Stdout, out_stamp));
    stderr.finish(|l| emit(l, &mut at, Stream::Stderr, err_stamp));
    publish(&progress, at, past_skip());
    summarise(container, &mut limiter());
    tracing::info!(
        container,
        lines = count.load(std::sync::atomic::Ordering::Relaxed),
        "Container {container} has closed its IO channel"
    );
    count.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until `due`, or for ever.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

/// Says in the sidecar's log how many lines the mirror dropped lately.
fn summarise(container: &str, limiter: &mut Limiter) {
    if let Some(dropped) = limiter.summarise(Instant::now()) {
        tracing::warn!(
            container,
            lines = dropped.lines,
            bytes = dropped.bytes,
            "chaincode output over the mirror's rate limit (cclaunch.output.maxLinesPerSecond, maxBytesPerSecond, burst): {} lines ({} bytes) not mirrored in {:.1} s; the engine's log of the container keeps them",
            dropped.lines,
            dropped.bytes,
            dropped.over.as_secs_f64()
        );
    }
}

/// Publishes the position for the checkpoint writer. A resumed mirror still
/// inside what was logged before publishes nothing: the loaded checkpoint
/// stays the better record until a new line has been logged.
fn publish(progress: &tokio::sync::watch::Sender<Position>, at: Position, past_skip: bool) {
    if past_skip {
        progress.send_if_modified(|published| std::mem::replace(published, at) != at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::captured::Captured;
    use crate::runtime::Output;

    fn stamped(seconds: u64, text: &str) -> Result<Output, crate::runtime::Error> {
        let time = format!("1970-01-01T00:00:{seconds:02}.000000000Z");
        Ok(Output::Stdout(bytes::Bytes::from(format!("{time} {text}"))))
    }

    /// Re-reading a log whose oldest lines were rotated away: the counts no
    /// longer line up, the times still say what was logged before.
    #[tokio::test]
    async fn resuming_skips_only_what_was_logged_before_by_count_and_time() {
        let run = |frames: Vec<Result<Output, crate::runtime::Error>>, skip: Skip| async move {
            let (captured, _capturing) = Captured::start();
            let (tx, rx) = tokio::sync::watch::channel(Position::default());
            let output: OutputStream = Box::pin(futures_util::stream::iter(frames));
            mirror("resume-test", output, 64, Rate::UNLIMITED, Some(skip), tx).await;
            let at = *rx.borrow();
            (captured.of("resume-test"), at)
        };
        // Lines 1-3 counted (from "l1"), the position saved at t=13.
        let skip = Skip {
            at: Position {
                stdout: 3,
                first_stdout: Some(super::super::position::fingerprint("l1")),
                ..Position::default()
            },
            saved_at: Duration::from_secs(13),
        };
        // Intact log: lines 1-3 (t=11..13) were mirrored, 4 came later.
        let frames = (1..=4)
            .map(|n| stamped(10 + n, &format!("l{n}\n")))
            .collect();
        let (lines, at) = run(frames, skip).await;
        assert_eq!(lines, ["l4"]);
        assert_eq!((at.stdout, at.first_stdout), (4, skip.at.first_stdout));
        // Intact log, but the engine stamped line 3 after the live mirror
        // had counted it and the position was saved: still not repeated.
        let frames = (1..=4)
            .map(|n| stamped(11 + n, &format!("l{n}\n")))
            .collect();
        let (lines, _) = run(frames, skip).await;
        assert_eq!(lines, ["l4"]);
        // Rotated: l1 and l2 are gone, so l4 and l5 now count as 2 and 3,
        // but they were logged after the checkpoint.
        let frames = (3..=5)
            .map(|n| stamped(10 + n, &format!("l{n}\n")))
            .collect();
        let (lines, at) = run(frames, skip).await;
        assert_eq!(lines, ["l4", "l5"]);
        assert_ne!(at.first_stdout, skip.at.first_stdout, "counts from l3 now");
        // A line logged just before the checkpoint but not yet counted by it
        // (in flight) is beyond the count: mirrored.
        let frames = (1..=4).map(|n| stamped(10, &format!("l{n}\n"))).collect();
        let (lines, _) = run(frames, skip).await;
        assert_eq!(lines, ["l4"]);
        // A checkpoint of an older cclaunch (no fingerprint): time decides.
        let older = Skip {
            at: Position {
                stdout: 3,
                ..Position::default()
            },
            ..skip
        };
        let frames = (1..=4)
            .map(|n| stamped(10 + n, &format!("l{n}\n")))
            .collect();
        let (lines, _) = run(frames, older).await;
        assert_eq!(lines, ["l4"]);
    }
}
