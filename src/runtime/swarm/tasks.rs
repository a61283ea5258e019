//! Tasks: a service's container on some node. Its state as a container's
//! (created, running, exited with a code), its end (wait), and the node it
//! ran on when that node went down.

use bollard::models::{NodeState, Service, Task, TaskState};

use super::names::LABEL_CONTAINER_NAME;
use super::{Swarm, POLL};
use crate::runtime::{ContainerInfo, Error, Lost};

/// How a task ended, or that it has not.
#[derive(Debug)]
pub(super) enum End {
    /// Still to come, or running.
    Not,
    /// Its container exited with this code.
    Exited(i64),
    /// It ended without an exit code (its node down, rejected, orphaned).
    Lost(Error),
    /// The service is gone (removed meanwhile).
    Gone,
}

/// The service's current task: the newest (one replica, never restarted, so
/// one per start).
pub(super) fn latest<'a>(tasks: impl Iterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks.max_by_key(|t| t.version.as_ref().and_then(|v| v.index).unwrap_or(0))
}

pub(super) fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn terminal(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::FAILED
                | TaskState::SHUTDOWN
                | TaskState::REJECTED
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    )
}

fn exit_code(task: &Task) -> Option<i64> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code)
}

/// What the engine knows of the service, as of a container.
pub(super) fn info(service: &Service, task: Option<&Task>) -> ContainerInfo {
    let spec = service.spec.clone().unwrap_or_default();
    let labels = spec.labels.unwrap_or_default();
    let container = spec
        .task_template
        .and_then(|t| t.container_spec)
        .unwrap_or_default();
    let state = task.and_then(state);
    let (status, running, exit) = match task {
        None => ("created", false, None),
        Some(task) if terminal(state) => ("exited", false, exit_code(task)),
        Some(_) => ("running", true, None),
    };
    ContainerInfo {
        id: service.id.clone().unwrap_or_default(),
        name: labels
            .get(LABEL_CONTAINER_NAME)
            .cloned()
            .unwrap_or_default(),
        image: container.image.unwrap_or_default(),
        labels,
        running,
        status: status.to_string(),
        exit_code: exit,
        args: container.args.unwrap_or_default(),
        env: container.env.unwrap_or_default(),
    }
}

impl Swarm {
    /// The hostname of node `id` when it is down (or unknown to the
    /// manager), `None` while it is up.
    async fn node_down(&self, id: &str) -> Result<Option<String>, Error> {
        let node = self
            .call("inspect node", id, self.client().inspect_node(id))
            .await;
        let node = match node {
            Ok(node) => node,
            Err(Error::NotFound { .. }) => return Ok(Some(id.to_string())),
            Err(e) => return Err(e),
        };
        let state = node.status.and_then(|s| s.state);
        let hostname = node
            .description
            .and_then(|d| d.hostname)
            .unwrap_or_else(|| id.to_string());
        Ok(match state {
            Some(NodeState::READY) => None,
            _ => Some(hostname),
        })
    }

    /// How the task of service `id` (Fabric's `container`) stands now;
    /// `check_node`: also ask whether its node is up.
    pub(super) async fn task_end(
        &self,
        id: &str,
        container: &str,
        check_node: bool,
    ) -> Result<End, Error> {
        let tasks = self.tasks_of(&[id]).await?;
        let Some(task) = latest(tasks.iter()) else {
            // No task yet (not started), or no service any more.
            return Ok(match self.find(id).await? {
                Some(_) => End::Not,
                None => End::Gone,
            });
        };
        let state = state(task);
        let status = task.status.clone().unwrap_or_default();
        let state_name = state.map(|s| s.to_string()).unwrap_or_default();
        let node_name = |node: Option<String>| node.unwrap_or_else(|| "(none)".to_string());
        if terminal(state) {
            if let (Some(code), false) = (
                exit_code(task),
                matches!(state, Some(TaskState::REJECTED | TaskState::ORPHANED)),
            ) {
                return Ok(End::Exited(code));
            }
            let node = match &task.node_id {
                Some(node) => self.hostname(node).await,
                None => None,
            };
            return Ok(End::Lost(Error::Lost(Box::new(Lost {
                target: container.to_string(),
                node: node_name(node),
                state: state_name,
                reason: status
                    .err
                    .or(status.message)
                    .unwrap_or_else(|| "it ended without an exit code".to_string()),
                node_down: false,
            }))));
        }
        // A task whose node is lost stays as it was last reported; Swarm
        // then no longer wants it running, which is when its node is asked
        // (and every few polls in any case).
        let unwanted = !matches!(
            task.desired_state,
            Some(TaskState::RUNNING | TaskState::READY) | None
        );
        if let (Some(node), true) = (&task.node_id, check_node || unwanted) {
            if let Some(hostname) = self.node_down(node).await? {
                return Ok(End::Lost(Error::Lost(Box::new(Lost {
                    target: container.to_string(),
                    node: hostname,
                    state: state_name,
                    reason: "its node is down".to_string(),
                    node_down: true,
                }))));
            }
        }
        Ok(End::Not)
    }

    async fn hostname(&self, node: &str) -> Option<String> {
        let found = self
            .call("inspect node", node, self.client().inspect_node(node))
            .await
            .ok()?;
        found.description.and_then(|d| d.hostname)
    }

    /// Blocks until the task ends: its exit code, or the error of a task
    /// lost (with its node named).
    pub(super) async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        let found = self.found(container).await?;
        let mut polls: u64 = 0;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self
                .task_end(&found.id, &found.container, polls % 4 == 0)
                .await?
            {
                End::Not => {}
                End::Exited(code) => return Ok(code),
                End::Lost(error) => return Err(error),
                End::Gone => {
                    return Err(Error::NotFound {
                        what: format!("container {container}"),
                    })
                }
            }
            polls += 1;
        }
    }
}
