//! Starts in flight, by chaincode. A Start runs to its end on its own even
//! when its caller gives up (see `detached`), so a client that retries on its
//! own deadline would queue a second start of the same chaincode behind the
//! first, and each would replace the container the last one made. A Start
//! identical to one still in flight waits for that one's outcome instead.
//! A different request (new TLS material, another peer address) is a new
//! start, queued as before, and so is any Start after a Stop of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tonic::Status;

use crate::launch::Launch;
use crate::proto::v1 as pb;
use crate::wire;

type Outcome = Result<pb::StartResponse, Status>;

struct InFlight {
    request: pb::StartRequest,
    /// Tells this start's entry from a later one of the same chaincode.
    generation: u64,
    outcome: Shared<BoxFuture<'static, Outcome>>,
}

#[derive(Clone, Default)]
pub(super) struct Starts {
    in_flight: Arc<Mutex<HashMap<String, InFlight>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
}

impl Starts {
    /// Starts `request` (detached, so shutdown waits for it), or joins the
    /// identical start already in flight.
    pub(super) async fn start(
        &self,
        launch: Arc<dyn Launch>,
        detached: &super::detached::Detached,
        request: pb::StartRequest,
    ) -> Outcome {
        let outcome = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.get(&request.package_id) {
                Some(running) if running.request == request => {
                    tracing::info!(chaincode = %request.package_id, "a Start identical to one in flight: it gets that one's outcome");
                    running.outcome.clone()
                }
                _ => {
                    let parsed = wire::from_start_request(request.clone())?;
                    let generation = self
                        .generations
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let package_id = request.package_id.clone();
                    let this = self.clone();
                    // Spawned under the lock, so its entry is in before it
                    // can end and take the entry out.
                    let task = detached.spawn("start", &request.package_id, async move {
                        // Taken out however the start ends (a panic too),
                        // so a later identical Start is a start again.
                        let _entry = Entry {
                            starts: this,
                            package_id,
                            generation,
                        };
                        launch
                            .start(parsed)
                            .await
                            .map(wire::started)
                            .map_err(|e| wire::status(&e))
                    })?;
                    let chaincode = request.package_id.clone();
                    let outcome = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(super::ended_abnormally("start", &chaincode, e))
                        })
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(
                        request.package_id.clone(),
                        InFlight {
                            request,
                            generation,
                            outcome: outcome.clone(),
                        },
                    );
                    outcome
                }
            }
        };
        outcome.await
    }

    /// A Stop of `package_id` is queued: a Start after it is a new start,
    /// never one that joins a start from before the stop.
    pub(super) fn forget(&self, package_id: &str) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.remove(package_id);
    }
}

/// A start's entry in `Starts`, taken out when the start ends, unless a
/// later start (or a Stop) has replaced it.
struct Entry {
    starts: Starts,
    package_id: String,
    generation: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut in_flight = self
            .starts
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if in_flight
            .get(&self.package_id)
            .is_some_and(|f| f.generation == self.generation)
        {
            in_flight.remove(&self.package_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::api::detached::{Detached, AT_MOST};
    use crate::launch::{
        self, Built, Chaincode, Collected, Error, Health, LineStream, LogQuery, Started,
    };
    use crate::launcher::Selection;
    use crate::package::Package;

    /// Its first start panics, later ones start; nothing else is called.
    struct PanicsOnce(AtomicU32);

    #[async_trait]
    impl Launch for PanicsOnce {
        async fn start(&self, _: launch::StartRequest) -> Result<Started, Error> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first start panics");
            }
            Ok(Started {
                container: "dev-peer0-cc".into(),
                platform: crate::platform::Platform::Golang,
            })
        }
        async fn build(&self, _: &Package, _: &dyn launch::Progress) -> Result<Built, Error> {
            unreachable!()
        }
        async fn stop(&self, _: &str) -> Result<String, Error> {
            unreachable!()
        }
        async fn wait(&self, _: &str) -> Result<i64, Error> {
            unreachable!()
        }
        async fn logs(&self, _: &str, _: LogQuery) -> Result<LineStream, Error> {
            unreachable!()
        }
        async fn list(&self) -> Result<Vec<Chaincode>, Error> {
            unreachable!()
        }
        async fn gc(&self, _: &Selection) -> Result<Collected, Error> {
            unreachable!()
        }
        async fn health(&self) -> Result<Health, Error> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn a_start_that_panicked_leaves_no_outcome_for_the_next_to_join() {
        let starts = Starts::default();
        let launch: Arc<dyn Launch> = Arc::new(PanicsOnce(AtomicU32::new(0)));
        let detached = Detached::new(AT_MOST);
        let request = pb::StartRequest {
            package_id: "cc:1".into(),
            peer_address: "peer0:7052".into(),
            ..Default::default()
        };
        let failed = starts
            .start(launch.clone(), &detached, request.clone())
            .await
            .expect_err("the first start panicked");
        assert!(
            failed
                .message()
                .contains("start of chaincode cc:1 ended abnormally"),
            "{}",
            failed.message()
        );
        let started = starts
            .start(launch, &detached, request)
            .await
            .expect("the same Start again is a start of its own");
        assert_eq!(started.container, "dev-peer0-cc");
    }

    /// A client that calls and gives up in a loop fills the room up to the
    /// bound, then is told so; nothing more is queued.
    #[tokio::test]
    async fn starts_and_stops_in_flight_are_bounded() {
        let detached = Detached::new(AT_MOST);
        for _ in 0..AT_MOST {
            detached
                .spawn("start", "cc:0", std::future::pending::<()>())
                .expect("room");
        }
        let launch: Arc<dyn Launch> = Arc::new(PanicsOnce(AtomicU32::new(1)));
        let request = pb::StartRequest {
            package_id: "cc:1".into(),
            peer_address: "peer0:7052".into(),
            ..Default::default()
        };
        let refused = Starts::default()
            .start(launch, &detached, request)
            .await
            .expect_err("no room");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("cannot start chaincode cc:1: 4096 starts and stops"),
            "{}",
            refused.message()
        );
        let refused = super::super::detached(&detached, "stop", "cc:1", async { Ok(()) })
            .await
            .expect_err("no room");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(detached.tracker().len(), AT_MOST);
    }
}
