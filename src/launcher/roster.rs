//! This peer's containers as the engine's events say they are, for a
//! sidecar: one listing when it starts, then every create, start, exit and
//! removal as it happens. `List` and `/metrics` read it instead of asking
//! the engine, whose listing takes seconds once a thousand containers run.
//!
//! Every event sets a container's state outright (running, exited with a
//! code, gone), and the engine sends them in order, so applying them on top
//! of a listing taken after the feed's `since` gives the engine's state.
//! A container an event touched while the listing was under way keeps what
//! the event said (the listing may be older). While the feed is down (an
//! engine restart) the roster is not live and callers list as before; it
//! lists again when the feed is back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use crate::runtime::{self, Change, ContainerEvent, ContainerInfo, Runner};

/// How far back the feed starts before the listing, for clocks that differ
/// by a little between this host and the engine's.
const SINCE_MARGIN: i64 = 2;
/// Exited containers inspected at once for their exit codes.
const INSPECT_AT_ONCE: usize = 16;
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Roster {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: bool,
    /// By container id.
    containers: HashMap<String, ContainerInfo>,
    /// While a listing is under way: the ids events touched since it began.
    touched: Option<HashSet<String>>,
}

impl Roster {
    /// Every container of the peer, or `None` when the roster is not live.
    pub(super) fn containers(&self) -> Option<Vec<ContainerInfo>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .live
            .then(|| state.containers.values().cloned().collect())
    }

    /// How many containers of the peer `keep` says yes to and run, or
    /// `None` when the roster is not live.
    pub(super) fn running(&self, keep: impl Fn(&ContainerInfo) -> bool) -> Option<usize> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.live.then(|| {
            state
                .containers
                .values()
                .filter(|c| c.running && keep(c))
                .count()
        })
    }

    fn begin_listing(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.touched = Some(HashSet::new());
    }

    /// The listing is in: it replaces what no event touched meanwhile.
    fn listed(&self, listed: Vec<ContainerInfo>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let touched = state.touched.take().unwrap_or_default();
        state.containers.retain(|id, _| touched.contains(id));
        for info in listed {
            if !touched.contains(&info.id) {
                state.containers.insert(info.id.clone(), info);
            }
        }
        state.live = true;
    }

    fn down(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.live = false;
        state.touched = None;
        state.containers.clear();
    }

    fn apply(&self, event: ContainerEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(touched) = &mut state.touched {
            touched.insert(event.id.clone());
        }
        if event.change == Change::Removed {
            state.containers.remove(&event.id);
            return;
        }
        let info = state
            .containers
            .entry(event.id.clone())
            .or_insert_with(|| ContainerInfo {
                id: event.id.clone(),
                name: event.name.clone(),
                image: event.image.clone(),
                labels: event.labels.clone(),
                running: false,
                status: "created".to_string(),
                exit_code: None,
                args: Vec::new(),
                env: Vec::new(),
            });
        // As an inspect says them: a paused container still runs; no exit
        // code while running, the last one once exited, 0 before a start.
        let (running, status, exit_code) = match event.change {
            Change::Created => (false, "created", Some(0)),
            Change::Started | Change::Unpaused => (true, "running", None),
            Change::Died { exit_code } => (false, "exited", exit_code),
            Change::Paused => (true, "paused", None),
            Change::Renamed => {
                info.name = event.name;
                return;
            }
            Change::Removed => return,
        };
        info.running = running;
        info.status = status.to_string();
        info.exit_code = exit_code;
    }
}

/// Keeps `roster` up to date from `runner`'s events for containers
/// carrying all of `labels`, until aborted; returns at once if the runner
/// has no event feed (the roster then stays not live).
pub(super) async fn follow(
    roster: Arc<Roster>,
    runner: Arc<dyn Runner>,
    labels: Vec<(String, String)>,
) {
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut retry = RETRY_FIRST;
    loop {
        let since = crate::output::unix_now().as_secs() as i64 - SINCE_MARGIN;
        let mut events = match runner.container_events(&labels, since).await {
            Ok(Some(events)) => events,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the engine's container events; List and /metrics ask the engine meanwhile");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        // The feed is read (so the engine holds the subscription) while the
        // listing is made.
        roster.begin_listing();
        let listing = listing(runner.as_ref(), &labels);
        tokio::pin!(listing);
        let mut listed = false;
        let ended = loop {
            tokio::select! {
                result = &mut listing, if !listed => {
                    listed = true;
                    match result {
                        Ok(containers) => {
                            roster.listed(containers);
                            retry = RETRY_FIRST;
                        }
                        Err(e) => break e.to_string(),
                    }
                }
                event = events.next() => match event {
                    Some(Ok(event)) => roster.apply(event),
                    Some(Err(e)) => break e.to_string(),
                    None => break "the engine ended the feed".to_string(),
                }
            }
        };
        roster.down();
        tracing::warn!(error = %ended, "lost the engine's container events; List and /metrics ask the engine until they are back");
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// The containers as listed, those not running inspected (as `List` does
/// without a roster) for their exit codes.
async fn listing(
    runner: &dyn Runner,
    labels: &[(&str, &str)],
) -> Result<Vec<ContainerInfo>, runtime::Error> {
    let listed = runner.list_containers(labels).await?;
    let inspected = futures_util::stream::iter(listed.into_iter().map(|info| async move {
        if info.running {
            return Ok(Some(info));
        }
        // A container gone meanwhile is left out.
        Ok(runner
            .inspect_container(&info.id)
            .await?
            .map(|found| ContainerInfo {
                name: info.name,
                ..found
            }))
    }))
    .buffer_unordered(INSPECT_AT_ONCE)
    .collect::<Vec<Result<Option<ContainerInfo>, runtime::Error>>>()
    .await;
    let mut found = Vec::new();
    for info in inspected {
        found.extend(info?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, change: Change) -> ContainerEvent {
        ContainerEvent {
            id: id.into(),
            name: format!("name-{id}"),
            image: "image".into(),
            labels: runtime::Labels::new(),
            change,
        }
    }

    fn info(id: &str, running: bool) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: format!("name-{id}"),
            image: "image".into(),
            labels: runtime::Labels::new(),
            running,
            status: if running { "running" } else { "exited" }.into(),
            exit_code: (!running).then_some(0),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    fn states(roster: &Roster) -> Vec<(String, bool, String, Option<i64>)> {
        let mut all: Vec<_> = roster
            .containers()
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.running, c.status, c.exit_code))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn not_live_until_listed() {
        let roster = Roster::default();
        roster.begin_listing();
        roster.apply(event("a", Change::Started));
        assert!(roster.containers().is_none());
        assert_eq!(roster.running(|_| true), None);
        roster.listed(Vec::new());
        assert_eq!(roster.running(|_| true), Some(1));
    }

    /// The listing may be older than events that came while it was made:
    /// what those events said stays; the rest is the listing's.
    #[test]
    fn events_during_the_listing_win_over_it() {
        let roster = Roster::default();
        roster.begin_listing();
        roster.apply(event("a", Change::Died { exit_code: Some(3) }));
        roster.apply(event("b", Change::Removed));
        roster.listed(vec![info("a", true), info("b", true), info("c", true)]);
        assert_eq!(
            states(&roster),
            [
                ("a".into(), false, "exited".into(), Some(3)),
                ("c".into(), true, "running".into(), None),
            ]
        );
    }

    #[test]
    fn events_after_the_listing_set_each_state() {
        let roster = Roster::default();
        roster.begin_listing();
        roster.listed(vec![info("a", true)]);
        roster.apply(event("b", Change::Created));
        assert_eq!(roster.running(|_| true), Some(1));
        roster.apply(event("b", Change::Started));
        roster.apply(event(
            "a",
            Change::Died {
                exit_code: Some(137),
            },
        ));
        roster.apply(event("c", Change::Started));
        roster.apply(event("c", Change::Paused));
        roster.apply(event("d", Change::Created));
        assert_eq!(
            states(&roster),
            [
                ("a".into(), false, "exited".into(), Some(137)),
                ("b".into(), true, "running".into(), None),
                ("c".into(), true, "paused".into(), None),
                ("d".into(), false, "created".into(), Some(0)),
            ]
        );
        roster.apply(event("a", Change::Started));
        roster.apply(event("b", Change::Removed));
        assert_eq!(
            states(&roster),
            [
                ("a".into(), true, "running".into(), None),
                ("c".into(), true, "paused".into(), None),
                ("d".into(), false, "created".into(), Some(0)),
            ]
        );
        roster.down();
        assert!(roster.containers().is_none());
    }
}
