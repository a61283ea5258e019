//! A Pod's output: there is no attach, so both attach and logs read the
//! Pod's log (`pods/log`, always with timestamps), from its first line once
//! the container has left `waiting`.
//!
//! A followed log also ends when the API server or the kubelet drops it, so
//! after every end the Pod is read again: terminated, the output is over;
//! still running, the log is followed again from a checkpoint (`S`, `k`):
//! `S` the latest whole second among the stamps delivered so far, `k` the
//! number of delivered lines stamped in second `S` or later. The log is
//! asked again with `sinceTime=S` and its first `k` lines are dropped: the
//! kubelet drops only lines stamped before `S` and returns the rest in file
//! order, so nothing is lost or repeated (docs/KUBERNETES.md). The stream
//! mixes stdout and stderr (the log API cannot tell them apart): every line
//! is [`Output::Stdout`]. A stamp with an offset is turned into UTC (`Z`), as
//! the mirror reads them.

use bytes::Bytes;
use futures_util::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use kube::api::LogParams;
use tokio::sync::mpsc;

use super::pods::{state_of, Found};
use super::{wait, Kubernetes, Retry, CONTAINER, POLL};
use crate::runtime::{Error, LogQuery, Output, OutputStream};

/// Lines in flight between the reader task and the caller.
const BUFFER: usize = 64;
/// The longest pause between two looks at a container not started yet.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a followed log is: see the module's comment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Mark {
    /// `S`, in Unix seconds; `None` until a stamped line was delivered.
    second: Option<i64>,
    /// `k`.
    count: u64,
}

impl Mark {
    fn note(&mut self, second: i64) {
        match self.second {
            Some(s) if second < s => {}
            Some(s) if second == s => self.count += 1,
            _ => {
                self.second = Some(second);
                self.count = 1;
            }
        }
    }
}

/// A log line's stamp in UTC (`…Z`, as written when it already was) and its
/// whole second, and the rest of the line.
fn stamp(line: &[u8]) -> Option<(String, i64, &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    let text = std::str::from_utf8(&line[..space]).ok()?;
    let time = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    let utc = if text.ends_with('Z') {
        text.to_string()
    } else {
        time.to_rfc3339_opts(SecondsFormat::Nanos, true)
    };
    Some((utc, time.timestamp(), &line[space + 1..]))
}

/// The container, as a log reader sees it.
enum Phase {
    /// Not started yet (or never will: Wait says why).
    Waiting {
        hopeless: bool,
    },
    Running,
    Ended,
}

fn phase(found: &Found, pod: &Pod) -> Phase {
    match state_of(pod) {
        Some(ContainerState {
            running: Some(_), ..
        }) => Phase::Running,
        Some(ContainerState {
            terminated: Some(_),
            ..
        }) => Phase::Ended,
        _ => {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Failed" | "Succeeded")) {
                return Phase::Ended;
            }
            Phase::Waiting {
                hopeless: matches!(wait::end(found, pod, false), Some(Err(_))),
            }
        }
    }
}

impl Kubernetes {
    /// The container's output from its first line on, ending when it ends.
    pub(super) async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        let found = self.found(container).await?;
        Ok(self.read(found, LogQuery::all(true)))
    }

    pub(super) async fn logs(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<OutputStream, Error> {
        let found = self.found(container).await?;
        Ok(self.read(found, query.clone()))
    }

    /// The log as `query` asks, read by a task of its own (see the module's
    /// comment); the task ends when the stream is dropped.
    fn read(&self, found: Found, query: LogQuery) -> OutputStream {
        let (tx, rx) = mpsc::channel(BUFFER);
        let kubernetes = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                outcome = kubernetes.pump(&found, &query, &tx) => {
                    if let Err(e) = outcome {
                        let _ = tx.send(Err(e)).await;
                    }
                }
                _ = tx.closed() => {}
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// Sends the log's lines to `tx` until the container's output is over
    /// (or, unfollowed, what is logged now).
    async fn pump(
        &self,
        found: &Found,
        query: &LogQuery,
        tx: &mpsc::Sender<Result<Output, Error>>,
    ) -> Result<(), Error> {
        let target = found.target();
        let mut mark = Mark::default();
        let mut retry = Retry::default();
        // Polls of a container not started yet, backing off (many Pods
        // starting at once would otherwise flood the API server).
        let mut waits: u32 = 0;
        // Streams in a row that ended with nothing new.
        let mut empty: u32 = 0;
        loop {
            let now = self
                .call("get the pod of", &target, self.pods().get_opt(&found.name))
                .await;
            let pod = match now {
                Ok(Some(pod)) if pod.metadata.uid.as_deref() == Some(found.uid.as_str()) => {
                    retry.answered();
                    pod
                }
                // Deleted: its output is gone with it.
                Ok(_) => return Ok(()),
                Err(e) => {
                    tokio::time::sleep(retry.after(e, &target)?).await;
                    continue;
                }
            };
            let ended = match phase(found, &pod) {
                Phase::Waiting { hopeless } => {
                    if !query.follow || hopeless {
                        return Ok(());
                    }
                    tokio::time::sleep((POLL * 2u32.pow(waits.min(3))).min(WAIT_POLL)).await;
                    waits += 1;
                    continue;
                }
                Phase::Running => false,
                Phase::Ended => true,
            };
            let params = LogParams {
                container: Some(CONTAINER.to_string()),
                follow: query.follow && !ended,
                timestamps: true,
                tail_lines: match mark.second {
                    None => query.tail.and_then(|t| i64::try_from(t).ok()),
                    Some(_) => None,
                },
                since_time: match mark.second {
                    Some(second) => DateTime::from_timestamp(second, 0),
                    None if query.since > 0 => DateTime::from_timestamp(query.since, 0),
                    None => None,
                },
                ..Default::default()
            };
            let opened = self
                .call(
                    "read the log of",
                    &target,
                    self.pods().log_stream(&found.name, &params),
                )
                .await;
            let stream = match opened {
                Ok(stream) => stream,
                Err(Error::NotFound { .. }) => return Ok(()),
                Err(e) => {
                    // A 400 is a container between states; the API server
                    // away (restarting) is waited for.
                    tokio::time::sleep(retry.after(e, &target)?).await;
                    continue;
                }
            };
            retry.reset();
            let skip = match mark.second {
                Some(_) => mark.count,
                None => 0,
            };
            let mut stream = Box::pin(stream);
            let read = forward(&mut stream, ended, query.timestamps, skip, &mut mark, tx);
            let delivered = match read.await {
                Ok(delivered) => delivered,
                Err(Gone) => return Ok(()),
            };
            if !query.follow || ended {
                return Ok(());
            }
            // A stream that ends with nothing new while the Pod still runs
            // (the kubelet has not seen the exit yet, a proxy cutting every
            // stream) is asked again after a pause, growing.
            if delivered == 0 {
                tokio::time::sleep((POLL * 2u32.pow(empty.min(3))).min(WAIT_POLL)).await;
                empty += 1;
            } else {
                empty = 0;
            }
        }
    }
}

/// The receiver of a log went away.
struct Gone;

/// How much text of a line one log record holds at most: containerd's
/// default `max_container_log_line_size`. A longer line is kept as several
/// records, and a kubelet before 1.27 stamps each of them in the log it
/// serves (kubernetes#77603), so a stamp may follow every `PIECE` bytes of
/// a line. A line is also read this much at a time, so a line with no end
/// holds no more than that here.
const PIECE: usize = 16 << 10;
/// Room for a stamp and its space (RFC 3339 with nanoseconds and an offset
/// is 35 characters).
const HEAD: usize = 40;

/// Sends one opened log's lines to `tx` (stamps as `timestamps` asks),
/// dropping its first `skip` stamped lines and noting the rest in `mark`;
/// returns how many frames it sent. A long line goes in pieces of
/// [`PIECE`] bytes, each with the line's stamp (as the Docker engine sends
/// a long line), and the mirror splits them at
/// `cclaunch.output.maxLineBytes`. The stamp an older kubelet puts before
/// each later piece is taken off.
async fn forward<R: futures_util::AsyncBufRead + Unpin>(
    reader: &mut R,
    ended: bool,
    timestamps: bool,
    mut skip: u64,
    mark: &mut Mark,
    tx: &mpsc::Sender<Result<Output, Error>>,
) -> Result<u64, Gone> {
    let send =
        |frame: Bytes| async move { tx.send(Ok(Output::Stdout(frame))).await.map_err(|_| Gone) };
    let mut delivered = 0;
    let mut record = Vec::new();
    // Within a line longer than a piece: its stamp (`None`: unstamped) and
    // whether it is skipped.
    let mut within: Option<(Option<(String, i64)>, bool)> = None;
    loop {
        record.clear();
        let head = match read_record(reader, &mut record).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(error = %e, "a pod's log ended");
                record.clear();
                None
            }
        };
        let text = &record[head.unwrap_or(0)..];
        let whole = text.ends_with(b"\n");
        let full = text.len() == PIECE;
        if record.is_empty() || (!whole && !full && !ended) {
            // The end of the stream, or a line cut by a dropped connection:
            // it comes whole from the next read. One whose pieces went out
            // is ended here, so they never run into it.
            if !ended && matches!(within, Some((_, false))) {
                send(Bytes::from_static(b"\n")).await?;
            }
            break;
        }
        let (stamped, skipped) = match within.take() {
            Some(line) => line,
            None => match head.and_then(|h| stamp(&record[..h])) {
                Some((utc, second, _)) => (Some((utc, second)), skip > 0),
                // No stamp (never from the kubelet): delivered as is.
                None => (None, false),
            },
        };
        let frame = match &stamped {
            Some((utc, _)) if timestamps => {
                let mut framed = Vec::with_capacity(utc.len() + 1 + text.len());
                framed.extend_from_slice(utc.as_bytes());
                framed.push(b' ');
                framed.extend_from_slice(text);
                Bytes::from(framed)
            }
            _ => Bytes::copy_from_slice(text),
        };
        if !whole {
            within = Some((stamped, skipped));
        } else if let Some((_, second)) = stamped {
            // A line counts once it is whole: one cut short comes again.
            if skipped {
                skip -= 1;
            } else {
                mark.note(second);
            }
        }
        if !skipped && !text.is_empty() {
            send(frame).await?;
            delivered += 1;
        }
    }
    Ok(delivered)
}

/// Reads one record of the log into `out`: a stamp and its space if it
/// starts with one, then text up to and including a newline, at most
/// [`PIECE`] bytes of it. Returns where the text begins (`None`: no stamp,
/// it all is text); an empty `out` at the end of the stream.
async fn read_record<R: futures_util::AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    read_until(reader, out, HEAD, b" \n").await?;
    let head = (out.ends_with(b" ") && stamp(out).is_some()).then_some(out.len());
    if !out.ends_with(b"\n") {
        let text = out.len() - head.unwrap_or(0);
        read_until(reader, out, PIECE - text, b"\n").await?;
    }
    Ok(head)
}

/// Appends to `out` up to and including the first of `ends`, at most `max`
/// bytes; stops early at the end of the stream.
async fn read_until<R: futures_util::AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
    max: usize,
    ends: &[u8],
) -> std::io::Result<()> {
    let mut left = max;
    while left > 0 {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        let window = &available[..available.len().min(left)];
        let (used, found) = match window.iter().position(|b| ends.contains(b)) {
            Some(i) => (i + 1, true),
            None => (window.len(), false),
        };
        out.extend_from_slice(&window[..used]);
        reader.consume_unpin(used);
        left -= used;
        if found {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-12-02T14:04:05.1Z";
    const T2: &str = "2026-12-02T14:04:06.1Z";

    /// What `forward` sends of `log`: the frames, and the pieces it counts.
    async fn forwarded(log: &[u8], ended: bool, skip: u64, mark: &mut Mark) -> (Vec<Bytes>, u64) {
        stamped_as(log, ended, false, skip, mark).await
    }

    async fn stamped_as(
        log: &[u8],
        ended: bool,
        timestamps: bool,
        skip: u64,
        mark: &mut Mark,
    ) -> (Vec<Bytes>, u64) {
        let (tx, mut rx) = mpsc::channel(100_000);
        let mut reader = futures_util::io::Cursor::new(log.to_vec());
        let delivered = forward(&mut reader, ended, timestamps, skip, mark, &tx)
            .await
            .unwrap_or_else(|Gone| panic!("the receiver is here"));
        drop(tx);
        let mut frames = Vec::new();
        while let Some(Ok(Output::Stdout(frame))) = rx.recv().await {
            frames.push(frame);
        }
        (frames, delivered)
    }

    #[tokio::test]
    async fn a_line_with_no_end_is_read_in_bounded_pieces_and_counted_once_whole() {
        let long = "x".repeat(10 * PIECE + 7);
        let log = format!("{T1} {long}\n{T2} after\n");
        let mut mark = Mark::default();
        let (frames, delivered) = forwarded(log.as_bytes(), false, 0, &mut mark).await;
        assert!(
            frames.iter().all(|f| f.len() <= PIECE),
            "a piece over {PIECE} bytes"
        );
        assert_eq!(delivered, frames.len() as u64);
        let joined: Vec<u8> = frames.concat();
        assert_eq!(joined, format!("{long}\nafter\n").as_bytes());
        assert_eq!(
            mark,
            Mark {
                second: Some(1796220246),
                count: 1
            }
        );

        // Timestamped, every piece carries its line's stamp, as the Docker
        // engine's pieces do.
        let (frames, _) = stamped_as(log.as_bytes(), false, true, 0, &mut Mark::default()).await;
        assert_eq!(frames.len(), 12);
        let stamp = format!("{T1} ");
        assert!(frames[..11].iter().all(|f| f.starts_with(stamp.as_bytes())));
        assert_eq!(frames[11], format!("{T2} after\n").as_bytes());

        // Resumed after both: the long line is skipped whole, pieces and all.
        let mut mark = Mark::default();
        let (frames, _) = forwarded(log.as_bytes(), false, 1, &mut mark).await;
        assert_eq!(frames, [Bytes::from_static(b"after\n")]);
    }

    /// A kubelet before 1.27 stamps every record of a long line; a later one
    /// only its first. Both come out as the line that was logged.
    #[tokio::test]
    async fn the_stamps_an_older_kubelet_puts_inside_a_long_line_are_taken_off() {
        let x = "x".repeat(PIECE);
        // A piece of text after the runtime's cut that has a space early on
        // but no stamp is text.
        let mut y = "hello world ".to_string();
        y.push_str(&"y".repeat(PIECE - y.len()));
        let older = format!("{T1} {x}{T1} {x}{T1} xyz\n{T1} {y}{T1} end\n{T2} after\n");
        let later = format!("{T1} {x}{x}xyz\n{T1} {y}end\n{T2} after\n");
        for log in [older, later] {
            let mut mark = Mark::default();
            let (frames, _) = forwarded(log.as_bytes(), false, 0, &mut mark).await;
            assert_eq!(
                frames.concat(),
                format!("{x}{x}xyz\n{y}end\nafter\n").as_bytes()
            );
            assert_eq!(
                mark,
                Mark {
                    second: Some(1796220246),
                    count: 1
                }
            );
            let (frames, _) =
                stamped_as(log.as_bytes(), false, true, 0, &mut Mark::default()).await;
            let stamp = format!("{T1} ");
            assert!(frames[..5].iter().all(|f| f.starts_with(stamp.as_bytes())));
            assert_eq!(frames.len(), 6);
        }
    }

    #[tokio::test]
    async fn a_long_line_cut_by_a_dropped_stream_is_ended_and_not_counted() {
        let long = "y".repeat(3 * PIECE + 100);
        let log = format!("{T1} one\n{T2} {long}");
        let mut mark = Mark::default();
        let (frames, _) = forwarded(log.as_bytes(), false, 0, &mut mark).await;
        let joined = frames.concat();
        // Its first whole pieces, then an end of line; the short last piece
        // waits for the next read, which brings the line again from its stamp.
        assert!(joined.starts_with(b"one\nyyy"));
        assert!(joined.ends_with(b"y\n"));
        assert!(joined.len() < 4 + long.len());
        assert_eq!(
            mark,
            Mark {
                second: Some(1796220245),
                count: 1
            }
        );
        // Of a container that ended, the last line is all there is.
        let mut mark = Mark::default();
        let (frames, _) = forwarded(log.as_bytes(), true, 0, &mut mark).await;
        assert_eq!(frames.concat(), format!("one\n{long}").as_bytes());
    }

    #[test]
    fn the_checkpoint_counts_the_lines_of_the_latest_second() {
        let mut mark = Mark::default();
        for second in [10, 10, 11, 11, 11, 9, 11] {
            mark.note(second);
        }
        assert_eq!(
            mark,
            Mark {
                second: Some(11),
                count: 4
            }
        );
        mark.note(12);
        assert_eq!(
            mark,
            Mark {
                second: Some(12),
                count: 1
            }
        );
    }

    #[test]
    fn stamps_are_read_in_utc_whatever_their_offset() {
        let (utc, second, rest) = stamp(b"2026-12-02T15:04:05.123456789+01:00 hello\n").unwrap();
        assert_eq!(utc, "2026-12-02T14:04:05.123456789Z");
        assert_eq!(rest, b"hello\n");
        let (utc2, second2, _) = stamp(b"2026-12-02T14:04:05.5Z x").unwrap();
        assert_eq!(utc2, "2026-12-02T14:04:05.5Z");
        assert_eq!(second, second2);
        assert!(stamp(b"no stamp\n").is_none());
        assert!(stamp(b"\n").is_none());
    }
}
