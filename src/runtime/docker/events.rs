//! The engine's container events: what happens to containers, as it happens.

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;

use super::{label_filter, Docker};
use crate::runtime::{Change, ContainerEvent, EventStream};

impl Docker {
    /// Container events for containers carrying all of `labels`, from
    /// `since` on. The stream lasts until the engine ends it (it restarts).
    pub(super) fn container_events(&self, labels: &[(&str, &str)], since: i64) -> EventStream {
        let mut filters = label_filter(labels);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let options = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        let docker = self.clone();
        // The engine answers a subscription at once: only that is timed
        // (`quick`); the events then come as they happen.
        let events = self.quick.events(Some(options)).filter_map(move |event| {
            let docker = docker.clone();
            async move {
                match event {
                    Ok(message) => {
                        let actor = message.actor?;
                        let change = change(message.action.as_deref()?, actor.attributes.as_ref())?;
                        // The attributes are the container's labels, with
                        // its name and image (and an exit code, a signal).
                        let mut labels = actor.attributes.unwrap_or_default();
                        let name = labels.remove("name").unwrap_or_default();
                        let image = labels.remove("image").unwrap_or_default();
                        labels.remove("exitCode");
                        labels.remove("signal");
                        Some(Ok(ContainerEvent {
                            id: actor.id?,
                            name,
                            image,
                            labels,
                            change,
                        }))
                    }
                    Err(e) => Some(Err(docker.fail_after(
                        "follow events of",
                        "engine",
                        docker.timeouts.request,
                    )(e))),
                }
            }
        });
        Box::pin(events)
    }
}

/// An event's action (`die`, `exec_start: sh`, ...) as a change of what a
/// listing says; `None` for the actions that change none (exec, attach,
/// stop and kill requests, health, copies: a stop shows as `die`).
fn change(
    action: &str,
    attributes: Option<&std::collections::HashMap<String, String>>,
) -> Option<Change> {
    Some(match action {
        "create" => Change::Created,
        "start" => Change::Started,
        "die" => Change::Died {
            exit_code: attributes
                .and_then(|a| a.get("exitCode"))
                .and_then(|code| code.parse().ok()),
        },
        "pause" => Change::Paused,
        "unpause" => Change::Unpaused,
        "destroy" => Change::Removed,
        "rename" => Change::Renamed,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_changes() {
        let died = std::collections::HashMap::from([("exitCode".to_string(), "137".to_string())]);
        assert_eq!(
            change("die", Some(&died)),
            Some(Change::Died {
                exit_code: Some(137)
            })
        );
        assert_eq!(change("die", None), Some(Change::Died { exit_code: None }));
        assert_eq!(change("start", None), Some(Change::Started));
        assert_eq!(change("destroy", None), Some(Change::Removed));
        assert_eq!(change("kill", None), None);
        assert_eq!(change("exec_start: sh -c true", None), None);
    }
}
