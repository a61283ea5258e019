//! Wait: how a chaincode's Pod ended, from a watch on it (re-read after every
//! end of the watch, a 410 Gone included): the container's exit code, or an
//! error naming the reason it ended or never started.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::api::{WatchEvent, WatchParams};

use super::pods::{node_of, state_of, Found};
use super::{Kubernetes, Retry, POLL};
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
        let mut retry = Retry::default();
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
                    retry.reset();
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
                Err(e) => {
                    tracing::debug!(container, error = %e, "cannot watch the pod");
                    tokio::time::sleep(retry.after(e, &target)?).await;
                    continue;
                }
            }
            let now = match self
                .call("get the pod of", &target, self.pods().get_opt(&found.name))
                .await
            {
                Ok(now) => now,
                Err(e) => {
                    tokio::time::sleep(retry.after(e, &target)?).await;
                    continue;
                }
            };
            retry.reset();
            match now {
                Some(next) if next.metadata.uid.as_deref() == Some(found.uid.as_str()) => {
                    pod = next;
                }
                _ => return Err(gone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };

    fn found() -> Found {
        Found {
            pod: Pod::default(),
            name: "cc-pod".to_string(),
            uid: "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".to_string(),
            container: "dev-cc".to_string(),
        }
    }

    fn with_state(state: ContainerState) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: super::super::CONTAINER.to_string(),
                    state: Some(state),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(code: i32, reason: &str) -> Pod {
        with_state(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn waiting(reason: &str) -> Pod {
        with_state(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message: Some("the kubelet's words".to_string()),
            }),
            ..Default::default()
        })
    }

    fn error(outcome: Option<Result<i64, Error>>) -> String {
        match outcome {
            Some(Err(e)) => e.to_string(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn an_exit_is_its_code_and_the_engines_reasons_are_errors() {
        let f = found();
        assert!(matches!(
            end(&f, &terminated(0, "Completed"), false),
            Some(Ok(0))
        ));
        assert!(matches!(
            end(&f, &terminated(3, "Error"), false),
            Some(Ok(3))
        ));
        assert_eq!(
            error(end(&f, &terminated(137, "OOMKilled"), false)),
            "container dev-cc (pod cc-pod) ended with exit code 137: OOMKilled"
        );
        assert_eq!(
            error(end(&f, &waiting("ErrImageNeverPull"), false)),
            "container dev-cc (pod cc-pod) did not run: ErrImageNeverPull: the kubelet's words"
        );
        assert!(end(&f, &waiting("ContainerCreating"), true).is_none());
        assert!(end(&f, &waiting("ImagePullBackOff"), false).is_none());
        assert!(error(end(&f, &waiting("ImagePullBackOff"), true)).contains("ImagePullBackOff"));
    }

    #[test]
    fn an_evicted_or_unschedulable_pod_is_an_error() {
        let f = found();
        let evicted = Pod {
            status: Some(PodStatus {
                phase: Some("Failed".to_string()),
                reason: Some("Evicted".to_string()),
                message: Some("low on memory".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            error(end(&f, &evicted, false)),
            "container dev-cc (pod cc-pod) did not run: Evicted: low on memory"
        );
        let pending = Pod {
            status: Some(PodStatus {
                phase: Some("Pending".to_string()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".to_string(),
                    status: "False".to_string(),
                    reason: Some("Unschedulable".to_string()),
                    message: Some("0/1 nodes are available".to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(end(&f, &pending, false).is_none());
        assert!(error(end(&f, &pending, true)).contains("Unschedulable: 0/1 nodes"));
    }
}
