//! Wait: how a chaincode's Pod ended, from a watch on it (re-read after every
//! end of the watch, a 410 Gone included): the container's exit code, or an
//! error naming the reason it ended or never started.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::api::{WatchEvent, WatchParams};

use super::pods::{node_of, state_of, Found};
use super::{Kubernetes, POLL};
use crate::runtime::{Ended, Error};

/// Waiting reasons that end a start at once: the node cannot have the
/// image, or the container cannot be made as specified.
pub(super) const FATAL: [&str; 4] = [
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// Waiting reasons that end a start once they outlast the start deadline
/// (a registry may come back).
const SLOW: [&str; 2] = ["ErrImagePull", "ImagePullBackOff"];
/// Terminated reasons that are the engine's, not the chaincode's.
const ENGINE_ENDS: [&str; 3] = ["OOMKilled", "ContainerCannotRun", "StartError"];
/// The longest one watch is kept open (the API server's own cap is 30-60 min;
/// the client gives up on a silent connection after 295 s).
const WATCH_SECONDS: u32 = 240;

/// How the Pod stands: ended (with the outcome), or not yet.
pub(super) fn end(found: &Found, pod: &Pod, late: bool) -> Option<Result<i64, Error>> {
    let ended = |reason: String, message: String, exit_code: Option<i64>| {
        Some(Err(Error::Ended(Box::new(Ended {
            target: found.container.clone(),
            object: format!("pod {}", found.name),
            node: node_of(pod),
            reason,
            message,
            exit_code,
        }))))
    };
    match state_of(pod) {
        Some(ContainerState {
            terminated: Some(t),
            ..
        }) => {
            let reason = t.reason.unwrap_or_default();
            let code = i64::from(t.exit_code);
            if ENGINE_ENDS.contains(&reason.as_str()) {
                return ended(reason, t.message.unwrap_or_default(), Some(code));
            }
            return Some(Ok(code));
        }
        Some(ContainerState {
            waiting: Some(w), ..
        }) => {
            let reason = w.reason.unwrap_or_default();
            if FATAL.contains(&reason.as_str()) || (late && SLOW.contains(&reason.as_str())) {
                return ended(reason, w.message.unwrap_or_default(), None);
            }
        }
        _ => {}
    }
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
        // Ended without a container state of its own (evicted, deadline).
        let status = status.cloned().unwrap_or_default();
        return ended(
            status.reason.unwrap_or_else(|| "Failed".to_string()),
            status.message.unwrap_or_default(),
            None,
        );
    }
    if late {
        let unschedulable = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .filter(|c| c.status == "False");
        if let Some(condition) = unschedulable {
            return ended(
                condition
                    .reason
                    .clone()
                    .unwrap_or_else(|| "Unschedulable".to_string()),
                condition.message.clone().unwrap_or_default(),
                None,
            );
        }
    }
    None
}

impl Kubernetes {
    /// Blocks until the container ends: its exit code, or an error naming
    /// why it ended or never started; a Pod deleted meanwhile is `NotFound`.
    pub(super) async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        let found = self.found(container).await?;
        let target = found.target();
        let began = tokio::time::Instant::now();
        let deadline = self.options.start_deadline;
        let gone = || Error::NotFound {
            what: target.clone(),
        };
        let mut pod = found.pod.clone();
        loop {
            let late = began.elapsed() >= deadline;
            if let Some(outcome) = end(&found, &pod, late) {
                return outcome;
            }
            // Until the deadline passes, a watch ends in time to look again.
            let seconds = if late {
                WATCH_SECONDS
            } else {
                let left = deadline.saturating_sub(began.elapsed()) + Duration::from_secs(1);
                (left.as_secs() as u32).clamp(1, WATCH_SECONDS)
            };
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", found.name))
                .timeout(seconds);
            let version = pod.metadata.resource_version.clone().unwrap_or_default();
            let opened = self
                .call(
                    "watch the pod of",
                    &target,
                    self.pods().watch(&params, &version),
                )
                .await;
            match opened {
                Ok(events) => {
                    let mut events = Box::pin(events);
                    while let Some(event) = events.next().await {
                        match event {
                            Ok(WatchEvent::Added(next) | WatchEvent::Modified(next)) => {
                                if next.metadata.uid.as_deref() != Some(found.uid.as_str()) {
                                    return Err(gone());
                                }
                                pod = next;
                                let late = began.elapsed() >= deadline;
                                if let Some(outcome) = end(&found, &pod, late) {
                                    return outcome;
                                }
                            }
                            Ok(WatchEvent::Deleted(last)) => {
                                if last.metadata.uid.as_deref() == Some(found.uid.as_str()) {
                                    // Ended and deleted at once: what it said last.
                                    return match end(&found, &last, true) {
                                        Some(outcome) => outcome,
                                        None => Err(gone()),
                                    };
                                }
                            }
                            Ok(WatchEvent::Bookmark(_)) => {}
                            // 410 Gone (the version is too old) or another
                            // error: read the Pod again.
                            Ok(WatchEvent::Error(e)) => {
                                tracing::debug!(container, error = %e, "watch of the pod ended");
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(container, error = %e, "watch of the pod failed");
                                tokio::time::sleep(POLL).await;
                                break;
                            }
                        }
                    }
                }
                Err(e @ Error::Unreachable { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(container, error = %e, "cannot watch the pod");
                    tokio::time::sleep(POLL).await;
                }
            }
            let now = self
                .call("get the pod of", &target, self.pods().get_opt(&found.name))
                .await?;
            match now {
                Some(next) if next.metadata.uid.as_deref() == Some(found.uid.as_str()) => {
                    pod = next;
                }
                _ => return Err(gone()),
            }
        }
    }
}
