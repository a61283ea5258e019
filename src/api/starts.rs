//! Starts in flight, by chaincode. A Start runs to its end on its own even
//! when its caller gives up (see `detached`), so a client that retries on its
//! own deadline would queue a second start of the same chaincode behind the
//! first, and each would replace the container the last one made. A Start
//! identical to one still in flight waits for that one's outcome instead.
//! A different request (new TLS material, another peer address) is a new
//! start, queued as before.

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
    /// Starts `request` (on `tracker`, so shutdown waits for it), or joins
    /// the identical start already in flight.
    pub(super) async fn start(
        &self,
        launch: Arc<dyn Launch>,
        tracker: &tokio_util::task::TaskTracker,
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
                    let task = tracker.spawn(async move {
                        let outcome = launch
                            .start(parsed)
                            .await
                            .map(wire::started)
                            .map_err(|e| wire::status(&e));
                        this.finished(&package_id, generation);
                        outcome
                    });
                    let outcome = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(Status::internal(format!("the call ended abnormally: {e}")))
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

    fn finished(&self, package_id: &str, generation: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if in_flight
            .get(package_id)
            .is_some_and(|f| f.generation == generation)
        {
            in_flight.remove(package_id);
        }
    }
}
