//! A service's output: attach and logs.
//!
//! Swarm's followed service log never ends (it waits for tasks to come), so a
//! followed log is ended here: the task's state is polled, and once the task
//! has ended, the followed log is dropped and one unfollowed read delivers
//! what it had not yet delivered. Frames are matched by the engine's
//! timestamp, per stream (each stream keeps its order; Swarm does not keep
//! the order across the two), so nothing is lost or repeated.

use bollard::container::LogOutput;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::tasks::End;
use super::{Swarm, POLL};
use crate::runtime::docker::{logs_options, within};
use crate::runtime::{Error, LogQuery, Output, OutputStream};

/// Frames in flight between the reader task and the caller.
const BUFFER: usize = 64;

impl Swarm {
    /// The task's output from its first line on, ending when the task ends.
    pub(super) async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        let found = self.found(container).await?;
        Ok(self.follow(found.id, found.container, LogQuery::all(true)))
    }

    pub(super) async fn logs(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<OutputStream, Error> {
        let found = self.found(container).await?;
        if query.follow {
            Ok(self.follow(found.id, found.container, query.clone()))
        } else {
            Ok(Box::pin(self.read(&found.id, &found.container, query)))
        }
    }

    /// The service's log as the engine gives it.
    fn read(
        &self,
        id: &str,
        container: &str,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<Output, Error>> + Send + 'static {
        let options = logs_options(query);
        let docker = self.docker.clone();
        let target = container.to_string();
        let limit = self.timeouts().request;
        self.docker
            .quick()
            .service_logs(id, Some(options))
            .filter_map(move |frame| {
                let fail = docker.fail_after("read output of", &target, limit);
                let frame = match frame {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Ok(Output::Stdout(message)))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(fail(e))),
                };
                std::future::ready(frame)
            })
    }

    /// A followed log that ends when the task does (see the module's
    /// comment); a reader task feeds it, and ends when it is dropped.
    fn follow(&self, id: String, container: String, query: LogQuery) -> OutputStream {
        let (tx, rx) = mpsc::channel(BUFFER);
        let swarm = self.clone();
        tokio::spawn(async move {
            // Timestamps always, to match frames; shown only if asked for.
            let stamped = LogQuery {
                timestamps: true,
                ..query.clone()
            };
            let mut seen = Seen::default();
            let mut followed = Box::pin(swarm.read(&id, &container, &stamped));
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut polls: u64 = 0;
            loop {
                tokio::select! {
                    frame = followed.next() => match frame {
                        Some(Ok(frame)) => {
                            seen.note(&frame);
                            if tx.send(Ok(shown(frame, query.timestamps))).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        // The engine ended it: what is left comes below.
                        None => break,
                    },
                    _ = tick.tick() => {
                        if tx.is_closed() {
                            return;
                        }
                        polls += 1;
                        match swarm.task_end(&id, &container, polls % 4 == 0).await {
                            Ok(End::Not) => {}
                            Ok(End::Exited(_)) => break,
                            // Its node is gone, and its log with it.
                            Ok(End::Lost(_) | End::Gone) | Err(Error::NotFound { .. }) => return,
                            // The manager is slow or away: the followed log
                            // says so if it fails; keep polling.
                            Err(e) => tracing::debug!(container, error = %e, "task state"),
                        }
                    }
                }
            }
            drop(followed);
            let rest = LogQuery {
                follow: false,
                tail: if seen.any() { None } else { query.tail },
                ..stamped
            };
            let mut rest_stream = Box::pin(swarm.read(&id, &container, &rest));
            let mut matcher = seen.matcher(query.tail.is_some());
            let limit = swarm.timeouts().slow;
            let drained = within("read the rest of the output of", &container, limit, async {
                while let Some(frame) = rest_stream.next().await {
                    let frame = frame?;
                    if matcher.fresh(&frame)
                        && tx.send(Ok(shown(frame, query.timestamps))).await.is_err()
                    {
                        break;
                    }
                }
                Ok(())
            })
            .await;
            if let Err(e) = drained {
                let _ = tx.send(Err(e)).await;
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

/// The frame as the caller asked for it: without the engine's timestamp
/// unless asked.
fn shown(frame: Output, timestamps: bool) -> Output {
    if timestamps {
        return frame;
    }
    let strip = |message: Bytes| match message.iter().position(|&b| b == b' ') {
        Some(space) if key(&message).is_some() => message.slice(space + 1..),
        _ => message,
    };
    match frame {
        Output::Stdout(m) => Output::Stdout(strip(m)),
        Output::Stderr(m) => Output::Stderr(strip(m)),
    }
}

/// A frame's engine timestamp, comparable: (`YYYY-MM-DDTHH:MM:SS`, nanoseconds).
type Key = ([u8; 19], u32);

fn key(message: &[u8]) -> Option<Key> {
    let space = message.iter().position(|&b| b == b' ')?;
    let stamp = message[..space].strip_suffix(b"Z")?;
    let seconds: [u8; 19] = stamp.get(..19)?.try_into().ok()?;
    let nanos = match stamp.get(19..) {
        Some([]) | None => 0,
        Some([b'.', digits @ ..]) if !digits.is_empty() && digits.len() <= 9 => {
            let mut n: u32 = 0;
            for d in digits.iter().chain(std::iter::repeat(&b'0')).take(9) {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(d - b'0');
            }
            n
        }
        Some(_) => return None,
    };
    Some((seconds, nanos))
}

fn split(frame: &Output) -> (usize, &[u8]) {
    match frame {
        Output::Stdout(m) => (0, m),
        Output::Stderr(m) => (1, m),
    }
}

/// Per stream (stdout, stderr): the last timestamp delivered and how many
/// frames carried it.
#[derive(Debug, Default)]
struct Seen {
    last: [Option<(Key, usize)>; 2],
    first: Option<Key>,
}

impl Seen {
    fn note(&mut self, frame: &Output) {
        let (stream, message) = split(frame);
        let Some(key) = key(message) else {
            return;
        };
        self.first = Some(self.first.map_or(key, |f| f.min(key)));
        self.last[stream] = match self.last[stream] {
            Some((last, n)) if last == key => Some((last, n + 1)),
            _ => Some((key, 1)),
        };
    }

    fn any(&self) -> bool {
        self.first.is_some()
    }

    /// Picks, from a full re-read, the frames not yet delivered; `tailed`:
    /// the followed log began at a tail, so a stream it never showed starts
    /// no earlier than the first frame shown.
    fn matcher(self, tailed: bool) -> Matcher {
        Matcher {
            seen: self,
            tailed,
            skipped: [0, 0],
        }
    }
}

struct Matcher {
    seen: Seen,
    tailed: bool,
    /// Frames at the stream's last delivered timestamp met again so far.
    skipped: [usize; 2],
}

impl Matcher {
    fn fresh(&mut self, frame: &Output) -> bool {
        let (stream, message) = split(frame);
        let Some(key) = key(message) else {
            // Unmatchable: never delivered twice, so not again.
            return false;
        };
        match self.seen.last[stream] {
            None => !self.tailed || self.seen.first.is_none_or(|first| key >= first),
            Some((last, _)) if key < last => false,
            Some((last, delivered)) if key == last => {
                self.skipped[stream] += 1;
                self.skipped[stream] > delivered
            }
            Some(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> Output {
        Output::Stdout(Bytes::from(text.to_string()))
    }

    fn err(text: &str) -> Output {
        Output::Stderr(Bytes::from(text.to_string()))
    }

    #[test]
    fn timestamps_compare_whatever_their_digits() {
        let a = key(b"2026-12-02T06:54:57.6143Z x").unwrap();
        let b = key(b"2026-12-02T06:54:57.614324688Z x").unwrap();
        let c = key(b"2026-12-02T06:54:58Z x").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.1, 614_300_000);
        assert_eq!(key(b"no stamp here"), None);
        assert_eq!(key(b"2026-12-02T06:54:57.Z x"), None);
    }

    #[test]
    fn the_rest_of_a_followed_log_holds_only_what_was_not_delivered() {
        let mut seen = Seen::default();
        let delivered = [
            out("2026-01-01T00:00:01.1Z a\n"),
            err("2026-01-01T00:00:01.2Z e1\n"),
            out("2026-01-01T00:00:02Z b\n"),
            out("2026-01-01T00:00:02Z b again, same stamp\n"),
        ];
        for frame in &delivered {
            seen.note(frame);
        }
        let mut matcher = seen.matcher(false);
        let reread = [
            out("2026-01-01T00:00:01.1Z a\n"),
            out("2026-01-01T00:00:02Z b\n"),
            out("2026-01-01T00:00:02Z b again, same stamp\n"),
            out("2026-01-01T00:00:02Z b a third time\n"),
            err("2026-01-01T00:00:01.2Z e1\n"),
            err("2026-01-01T00:00:03Z e2\n"),
            out("2026-01-01T00:00:04Z c\n"),
        ];
        let fresh: Vec<_> = reread
            .iter()
            .filter(|f| matcher.fresh(f))
            .map(|f| shown(f.clone(), false))
            .collect();
        assert_eq!(fresh, [out("b a third time\n"), err("e2\n"), out("c\n")]);
    }

    #[test]
    fn a_stream_the_followed_log_never_showed_comes_whole_unless_tailed() {
        let mut seen = Seen::default();
        seen.note(&out("2026-01-01T00:00:05Z late\n"));
        let early_err = err("2026-01-01T00:00:01Z early\n");
        assert!(seen.matcher(false).fresh(&early_err));
        let mut seen = Seen::default();
        seen.note(&out("2026-01-01T00:00:05Z late\n"));
        assert!(!seen.matcher(true).fresh(&early_err));
    }
}
