//! Output mirroring: a chaincode container's stdout and stderr, line by line,
//! into the logger `peer.chaincode.<container name>`, as a Fabric peer names it.
//!
//! tracing's macros only take static targets, so each container gets its own
//! registered callsite (made once per container name and kept): filters such as
//! `RUST_LOG=peer.chaincode.dev-peer0-mycc-1=off` then work as for any target.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::{Kind, Level, Metadata};
use tracing_core::{Event, Interest};

use crate::printable::{self, Sgr};
use crate::rate::{Limiter, Rate};
use crate::runtime::{Output, OutputStream};

/// One line of output. `partial` marks a piece of a line longer than the
/// limit: the next piece follows in the next line, nothing is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub partial: bool,
}

/// Splits a byte stream into lines, holding at most `max` bytes at a time.
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(4),
        }
    }

    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Line)) {
        while let Some(&first) = bytes.first() {
            if self.buf.len() >= self.max {
                if first == b'\n' {
                    emit(self.take(self.buf.len(), false));
                    bytes = &bytes[1..];
                } else {
                    // Full and the line goes on: hand out a piece, cut on a
                    // character boundary so no piece is garbled.
                    let cut = match std::str::from_utf8(&self.buf) {
                        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
                        _ => self.buf.len(),
                    };
                    emit(self.take(cut, true));
                }
                continue;
            }
            let room = self.max - self.buf.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&window[..i]);
                    emit(self.take(self.buf.len(), false));
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                }
            }
        }
    }

    /// Emits what is left when the stream ends without a final newline.
    pub fn finish(&mut self, mut emit: impl FnMut(Line)) {
        if !self.buf.is_empty() {
            emit(self.take(self.buf.len(), false));
        }
    }

    fn take(&mut self, n: usize, partial: bool) -> Line {
        let rest = self.buf.split_off(n);
        let piece = std::mem::replace(&mut self.buf, rest);
        let mut text = String::from_utf8_lossy(&piece).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        Line { text, partial }
    }
}

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

    fn record(&self, line: &str) {
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

/// A logger named `peer.chaincode.<container>`.
#[derive(Clone, Copy)]
pub struct ChaincodeLogger {
    callsite: &'static LoggerCallsite,
}

struct LoggerCallsite {
    metadata: OnceLock<Metadata<'static>>,
}

impl Callsite for LoggerCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'static> {
        self.metadata
            .get()
            .expect("metadata is set before the callsite is registered")
    }
}

static LOGGERS: OnceLock<Mutex<HashMap<String, &'static LoggerCallsite>>> = OnceLock::new();

impl ChaincodeLogger {
    /// The logger for a container; made once per name and then reused (each
    /// costs a few hundred bytes for the life of the process).
    pub fn new(container: &str) -> ChaincodeLogger {
        let mut loggers = LOGGERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let callsite = *loggers.entry(container.to_string()).or_insert_with(|| {
            let target: &'static str =
                Box::leak(format!("peer.chaincode.{container}").into_boxed_str());
            let callsite: &'static LoggerCallsite = Box::leak(Box::new(LoggerCallsite {
                metadata: OnceLock::new(),
            }));
            let fields = FieldSet::new(&["message"], Identifier(callsite));
            let _ = callsite.metadata.set(Metadata::new(
                "chaincode output",
                target,
                Level::INFO,
                None,
                None,
                None,
                fields,
                Kind::EVENT,
            ));
            tracing_core::callsite::register(callsite);
            callsite
        });
        ChaincodeLogger { callsite }
    }

    pub fn target(&self) -> &'static str {
        self.callsite.metadata().target()
    }

    /// Logs one line at info.
    pub fn info(&self, line: &str) {
        let metadata = self.callsite.metadata();
        let enabled = tracing_core::dispatcher::get_default(|d| d.enabled(metadata));
        if !enabled {
            return;
        }
        let fields = metadata.fields();
        let Some(field) = fields.field("message") else {
            return;
        };
        let message = format_args!("{line}");
        let values = [(&field, Some(&message as &dyn tracing_core::field::Value))];
        Event::dispatch(metadata, &fields.value_set(&values));
    }
}

/// How far a container's output has been mirrored: lines seen per stream.
/// Lines are counted the way [`Lines`] splits them, so a reader of the
/// engine's log can skip exactly what an earlier mirror already logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub stdout: u64,
    pub stderr: u64,
}

/// What an earlier mirror already logged, when re-reading the engine's
/// timestamped log after a restart: a line is skipped only if both its count
/// is within `at` and the engine logged it by `saved_at` (when that position
/// was written down). The count alone breaks once the log driver rotates old
/// files away; the time alone misses a line still in flight when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub at: Position,
    /// Since the Unix epoch.
    pub saved_at: Duration,
}

impl Skip {
    /// Everything logged so far: for a running container with no checkpoint.
    pub fn until_now() -> Skip {
        Skip {
            at: Position {
                stdout: u64::MAX,
                stderr: u64::MAX,
            },
            saved_at: unix_now(),
        }
    }
}

pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

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
    tail: Arc<Tail>,
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
    let emit = |line: Line, seen: &mut u64, stamp: Option<Duration>, old: Option<u64>| {
        *seen += 1;
        if let (Some(skip), Some(old)) = (skip, old) {
            if *seen <= old && stamp.is_none_or(|t| t <= skip.saved_at) {
                return;
            }
        }
        fresh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The tail (exit reasons) keeps even lines the rate limit drops.
        let shown = printable::render(&line.text, Sgr::Strip);
        tail.record(&shown);
        if !limiter().admit(line.text.len(), Instant::now()) {
            crate::metrics::lines_dropped(1);
            return;
        }
        crate::metrics::lines_mirrored(1);
        logger.info(&shown);
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let (old_out, old_err) = (skip.map(|s| s.at.stdout), skip.map(|s| s.at.stderr));
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
                stdout.push(bytes, |l| emit(l, &mut at.stdout, out_stamp, old_out))
            }
            Ok(Output::Stderr(bytes)) => {
                let bytes = unstamp(&bytes, skip.is_some(), &mut err_stamp);
                stderr.push(bytes, |l| emit(l, &mut at.stderr, err_stamp, old_err))
            }
            Err(e) => {
                tracing::error!(container, error = %e, "error reading container output");
                break;
            }
        }
        publish(&progress, at, past_skip());
    }
    stdout.finish(|l| emit(l, &mut at.stdout, out_stamp, old_out));
    stderr.finish(|l| emit(l, &mut at.stderr, err_stamp, old_err));
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

/// A timestamped log frame starts with the engine's RFC 3339 time and a
/// space: takes it off and records it in `stamp`.
fn unstamp<'a>(frame: &'a [u8], stamped: bool, stamp: &mut Option<Duration>) -> &'a [u8] {
    if !stamped {
        return frame;
    }
    let Some(space) = frame.iter().position(|&b| b == b' ') else {
        return frame;
    };
    match std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(parse_rfc3339)
    {
        Some(time) => {
            *stamp = Some(time);
            &frame[space + 1..]
        }
        None => frame,
    }
}

/// `2026-11-23T11:24:04.123456789Z` (UTC, as the engine writes it) → time
/// since the Unix epoch.
fn parse_rfc3339(text: &str) -> Option<Duration> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || fraction.len() > 9 {
        return None;
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    // Days from 1970-01-01 in the proleptic Gregorian calendar.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, |l| out.push(l));
        }
        lines.finish(|l| out.push(l));
        out
    }

    fn line(text: &str, partial: bool) -> Line {
        Line {
            text: text.into(),
            partial,
        }
    }

    #[test]
    fn lines_are_joined_across_chunks() {
        assert_eq!(
            split(64, &[b"he", b"llo\nwor", b"ld\n", b"tail"]),
            [
                line("hello", false),
                line("world", false),
                line("tail", false)
            ]
        );
    }

    #[test]
    fn long_lines_come_out_in_bounded_pieces_with_nothing_lost() {
        let out = split(4, &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            out,
            [
                line("abcd", true),
                line("efgh", true),
                line("ij", false),
                line("xy", false)
            ]
        );
    }

    #[test]
    fn pieces_do_not_split_characters() {
        // "aé" is 3 bytes; a 4-byte limit must not cut the next "é" in half.
        let out = split(4, &["aééé\n".as_bytes()]);
        assert_eq!(out, [line("aé", true), line("éé", false)]);
    }

    #[test]
    fn empty_lines_and_crlf_are_kept_as_lines() {
        assert_eq!(
            split(16, &[b"a\r\n\nb\n"]),
            [line("a", false), line("", false), line("b", false)]
        );
    }

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
    fn engine_timestamps_parse() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.5Z"),
            Some(Duration::new(1, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T11:24:04.123456789Z"),
            Some(Duration::new(1_795_433_044, 123_456_789))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(Duration::from_secs(1_709_164_800))
        );
        for bad in [
            "2026-11-23 11:24:04Z",
            "2026-13-01T00:00:00Z",
            "x",
            "2026-11-23T11:24:04",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    fn stamped(seconds: u64, text: &str) -> Result<Output, crate::runtime::Error> {
        let time = format!("1970-01-01T00:00:{seconds:02}.000000000Z");
        Ok(Output::Stdout(bytes::Bytes::from(format!("{time} {text}"))))
    }

    /// Re-reading a log whose oldest lines were rotated away: the counts no
    /// longer line up, the times still say what was logged before.
    #[tokio::test]
    async fn resuming_skips_only_what_was_logged_before_by_count_and_time() {
        let run = |frames: Vec<Result<Output, crate::runtime::Error>>, skip: Skip| async move {
            let tail = Tail::new(100);
            let (tx, rx) = tokio::sync::watch::channel(Position::default());
            let output: OutputStream = Box::pin(futures_util::stream::iter(frames));
            mirror(
                "resume-test",
                output,
                64,
                Rate::UNLIMITED,
                tail.clone(),
                Some(skip),
                tx,
            )
            .await;
            let at = *rx.borrow();
            (tail.last(100), at)
        };
        let skip = Skip {
            at: Position {
                stdout: 3,
                stderr: 0,
            },
            saved_at: Duration::from_secs(13),
        };
        // Intact log: lines 1-3 (t=11..13) were mirrored, 4 came later.
        let frames = (1..=4)
            .map(|n| stamped(10 + n, &format!("l{n}\n")))
            .collect();
        let (lines, at) = run(frames, skip).await;
        assert_eq!(lines, ["l4"]);
        assert_eq!(at.stdout, 4);
        // Rotated: l1 and l2 are gone, so l4 and l5 now count as 2 and 3,
        // but they were logged after the checkpoint.
        let frames = (3..=5)
            .map(|n| stamped(10 + n, &format!("l{n}\n")))
            .collect();
        let (lines, _) = run(frames, skip).await;
        assert_eq!(lines, ["l4", "l5"]);
        // A line logged just before the checkpoint but not yet counted by it
        // (in flight) is beyond the count: mirrored.
        let frames = (1..=4).map(|n| stamped(10, &format!("l{n}\n"))).collect();
        let (lines, _) = run(frames, skip).await;
        assert_eq!(lines, ["l4"]);
    }

    #[test]
    fn loggers_are_named_after_the_container_and_reused() {
        let a = ChaincodeLogger::new("dev-peer0-cc-1");
        let b = ChaincodeLogger::new("dev-peer0-cc-1");
        assert_eq!(a.target(), "peer.chaincode.dev-peer0-cc-1");
        assert!(std::ptr::eq(a.callsite, b.callsite));
    }
}
