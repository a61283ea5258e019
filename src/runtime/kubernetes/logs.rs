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
            let mut skip = match mark.second {
                Some(_) => mark.count,
                None => 0,
            };
            let mut stream = Box::pin(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = stream.read_until(b'\n', &mut line).await;
                let whole = line.ends_with(b"\n");
                match read {
                    Ok(0) => break,
                    Ok(_) if !whole && !ended => {
                        // A piece of a line, cut by a dropped connection:
                        // it comes whole from the next read.
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(container = %found.container, error = %e, "the pod's log ended");
                        break;
                    }
                }
                let Some((utc, second, rest)) = stamp(&line) else {
                    // No stamp (never from the kubelet): delivered as is.
                    if tx
                        .send(Ok(Output::Stdout(Bytes::copy_from_slice(&line))))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                    continue;
                };
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                mark.note(second);
                let frame = if query.timestamps {
                    let mut framed = Vec::with_capacity(utc.len() + 1 + rest.len());
                    framed.extend_from_slice(utc.as_bytes());
                    framed.push(b' ');
                    framed.extend_from_slice(rest);
                    Bytes::from(framed)
                } else {
                    Bytes::copy_from_slice(rest)
                };
                if tx.send(Ok(Output::Stdout(frame))).await.is_err() {
                    return Ok(());
                }
            }
            if !query.follow || ended {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
