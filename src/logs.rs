//! Output mirroring: a chaincode container's stdout and stderr, line by line,
//! into the logger `peer.chaincode.<container name>`, as a Fabric peer names it.
//!
//! tracing's macros only take static targets, so each container gets its own
//! registered callsite (made once per container name and kept): filters such as
//! `RUST_LOG=peer.chaincode.dev-peer0-mycc-1=off` then work as for any target.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::StreamExt;
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::{Kind, Level, Metadata};
use tracing_core::{Event, Interest};

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

/// Mirrors a container's output until it closes, skipping the lines before
/// `from` and publishing the position after each frame (for checkpoints).
/// Returns the number of lines mirrored.
pub async fn mirror(
    container: &str,
    mut output: OutputStream,
    max_line: usize,
    tail: Arc<Tail>,
    from: Position,
    progress: tokio::sync::watch::Sender<Position>,
) -> u64 {
    let logger = ChaincodeLogger::new(container);
    let mut stdout = Lines::new(max_line);
    let mut stderr = Lines::new(max_line);
    let mut at = Position::default();
    let mut count = 0u64;
    let mut emit = |line: Line, seen: &mut u64, skip: u64| {
        *seen += 1;
        if *seen <= skip {
            return;
        }
        crate::metrics::lines_mirrored(1);
        logger.info(&line.text);
        tail.record(&line.text);
        count += 1;
    };
    while let Some(frame) = output.next().await {
        match frame {
            Ok(Output::Stdout(bytes)) => {
                stdout.push(&bytes, |l| emit(l, &mut at.stdout, from.stdout))
            }
            Ok(Output::Stderr(bytes)) => {
                stderr.push(&bytes, |l| emit(l, &mut at.stderr, from.stderr))
            }
            Err(e) => {
                tracing::error!(container, error = %e, "error reading container output");
                break;
            }
        }
        progress.send_if_modified(|published| std::mem::replace(published, at) != at);
    }
    stdout.finish(|l| emit(l, &mut at.stdout, from.stdout));
    stderr.finish(|l| emit(l, &mut at.stderr, from.stderr));
    progress.send_if_modified(|published| std::mem::replace(published, at) != at);
    tracing::info!(
        container,
        lines = count,
        "Container {container} has closed its IO channel"
    );
    count
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
    fn loggers_are_named_after_the_container_and_reused() {
        let a = ChaincodeLogger::new("dev-peer0-cc-1");
        let b = ChaincodeLogger::new("dev-peer0-cc-1");
        assert_eq!(a.target(), "peer.chaincode.dev-peer0-cc-1");
        assert!(std::ptr::eq(a.callsite, b.callsite));
    }
}
