//! Starts and stops that run to their end even when their caller goes away:
//! a caller that times out (the external builder's `run` has 4 s to stop
//! chaincode before the peer kills it) must not leave a container half made
//! or half removed. Shutdown waits for them ([`Detached::tracker`]).
//!
//! At most a fixed number run at once, counted by permits taken before the
//! spawn, so concurrent calls cannot overshoot it: a client that calls and
//! gives up in a loop would otherwise queue work without end.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tonic::Status;

/// Starts and stops in flight at once, their callers gone or not: far more
/// than a peer or a harness makes (each is one engine call sequence), and a
/// bound for one that retries without end.
pub(super) const AT_MOST: usize = 4096;

#[derive(Clone)]
pub(super) struct Detached {
    tracker: TaskTracker,
    room: Arc<Semaphore>,
    at_most: usize,
}

impl Detached {
    pub(super) fn new(at_most: usize) -> Detached {
        Detached {
            tracker: TaskTracker::new(),
            room: Arc::new(Semaphore::new(at_most)),
            at_most,
        }
    }

    /// Runs `work` on its own, or `RESOURCE_EXHAUSTED` naming `call` and
    /// `chaincode` when the bound is reached.
    pub(super) fn spawn<F>(
        &self,
        call: &str,
        chaincode: &str,
        work: F,
    ) -> Result<JoinHandle<F::Output>, Status>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let permit = Arc::clone(&self.room).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "cannot {call} chaincode {chaincode}: {} starts and stops are already in flight; try again once they end",
                self.at_most
            ))
        })?;
        Ok(self.tracker.spawn(async move {
            let _permit = permit;
            work.await
        }))
    }

    /// What shutdown waits on.
    pub(super) fn tracker(&self) -> TaskTracker {
        self.tracker.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many callers at once get exactly the bound's worth of room, however
    /// their calls interleave; the room comes back as work ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_never_overshoot_the_bound() {
        let detached = Detached::new(64);
        let release = Arc::new(tokio::sync::Notify::new());
        let callers: Vec<_> = (0..512)
            .map(|i| {
                let (detached, release) = (detached.clone(), Arc::clone(&release));
                tokio::spawn(async move {
                    detached
                        .spawn("start", &format!("cc:{i}"), async move {
                            release.notified().await;
                        })
                        .is_ok()
                })
            })
            .collect();
        let mut admitted = 0;
        for caller in callers {
            admitted += usize::from(caller.await.expect("caller"));
        }
        assert_eq!(admitted, 64);
        assert_eq!(detached.tracker().len(), 64);
        let refused = detached
            .spawn("stop", "cc:x", async {})
            .expect_err("no room");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("cannot stop chaincode cc:x: 64 starts and stops"),
            "{}",
            refused.message()
        );
        // Work ending gives its room back.
        release.notify_waiters();
        let tracker = detached.tracker();
        tracker.close();
        tracker.wait().await;
        detached
            .spawn("stop", "cc:x", async {})
            .expect("room again")
            .await
            .expect("ran");
    }
}
