//! One engine answer shared by many callers: kept for a short time, and
//! while it is being fetched every caller waits on that one fetch. The
//! operations endpoint is reachable from chaincode (it shares the host's
//! network), so however often it is asked, the engine is asked at most once
//! per `ttl`. The fetch runs as its own task: a caller that goes away
//! (a dropped connection) neither cancels it nor makes the next caller
//! start another.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

pub struct Cached<T> {
    ttl: Duration,
    state: Arc<Mutex<State<T>>>,
}

enum State<T> {
    Idle(Option<(Instant, T)>),
    /// `None` if the fetch panicked.
    Fetching(Shared<BoxFuture<'static, Option<T>>>),
}

impl<T: Clone + Send + Sync + 'static> Cached<T> {
    pub fn new(ttl: Duration) -> Cached<T> {
        Cached {
            ttl,
            state: Arc::new(Mutex::new(State::Idle(None))),
        }
    }

    /// The value fetched less than `ttl` ago, the one being fetched now, or
    /// (when neither) a new fetch's. `None` only if the fetch panicked.
    pub async fn get<F, Fut>(&self, fetch: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let pending = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &*state {
                State::Idle(Some((at, value))) if at.elapsed() < self.ttl => {
                    return Some(value.clone())
                }
                // A fetch that ended without storing its value panicked.
                State::Fetching(pending) if pending.peek().is_none() => pending.clone(),
                _ => {
                    let task = tokio::spawn({
                        let state = Arc::clone(&self.state);
                        let fetched = fetch();
                        async move {
                            let value = fetched.await;
                            *state.lock().unwrap_or_else(|p| p.into_inner()) =
                                State::Idle(Some((Instant::now(), value.clone())));
                            value
                        }
                    });
                    let pending = async move { task.await.ok() }.boxed().shared();
                    *state = State::Fetching(pending.clone());
                    pending
                }
            }
        };
        pending.await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::sync::Notify;

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    /// A fetch that counts itself and, when gated, waits for the gate.
    fn counting(
        fetches: &Arc<AtomicU32>,
        gate: Option<(Arc<Notify>, Arc<Notify>)>,
    ) -> impl FnOnce() -> BoxFuture<'static, u32> {
        let fetches = Arc::clone(fetches);
        move || {
            async move {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some((started, open)) = gate {
                    started.notify_one();
                    open.notified().await;
                }
                n
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn callers_during_a_fetch_share_it_and_later_ones_its_answer() {
        let cached = Arc::new(Cached::new(LONG));
        let fetches = Arc::new(AtomicU32::new(0));
        let (started, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let cached = Arc::clone(&cached);
                let fetch = counting(&fetches, Some((Arc::clone(&started), Arc::clone(&open))));
                tokio::spawn(async move { cached.get(fetch).await })
            })
            .collect();
        // The fetch is under way (the callers, spawned first, are waiting).
        started.notified().await;
        open.notify_one();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Some(1));
        }
        assert_eq!(cached.get(counting(&fetches, None)).await, Some(1));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_answer_is_fetched_again() {
        let cached = Cached::new(Duration::ZERO);
        let fetches = Arc::new(AtomicU32::new(0));
        assert_eq!(cached.get(counting(&fetches, None)).await, Some(1));
        assert_eq!(cached.get(counting(&fetches, None)).await, Some(2));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_fetch() {
        let cached = Cached::new(LONG);
        let fetches = Arc::new(AtomicU32::new(0));
        let (started, open) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let first = cached.get(counting(
            &fetches,
            Some((Arc::clone(&started), Arc::clone(&open))),
        ));
        // Polled once (the fetch starts), then dropped, as a closed
        // connection drops its handler.
        assert!(first.now_or_never().is_none());
        started.notified().await;
        open.notify_one();
        assert_eq!(cached.get(counting(&fetches, None)).await, Some(1));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_fetch_is_tried_again_next_time() {
        let cached = Cached::new(LONG);
        assert_eq!(
            cached.get(|| async { panic!("engine client bug") }).await,
            None::<u32>
        );
        assert_eq!(cached.get(|| async { 7 }).await, Some(7));
    }
}
