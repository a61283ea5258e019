//! A queue between a producer and a consumer that may be slow (a gRPC
//! client that does not read), bounded by bytes rather than by items: one
//! item may be a 64 KiB output line or an empty one, so a count alone bounds
//! nothing. The producer either waits for room ([`Sender::send`]) or, when it
//! must not be held up, drops what does not fit and counts it
//! ([`Sender::offer`]); the consumer then sees one [`Item::Dropped`] with
//! the count where the items went missing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// What every item costs on top of its own bytes (its allocation and slot),
/// so a flood of empty items is bounded too.
const ITEM_OVERHEAD: usize = 64;

/// What the consumer receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<T> {
    Value(T),
    /// This many items were dropped here because the queue was full.
    Dropped(u64),
}

/// The consumer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the receiving end of the queue is gone")]
pub struct Closed;

struct Slot<T> {
    item: Item<T>,
    /// Room taken in the queue, given back when the consumer takes the item.
    _room: Option<OwnedSemaphorePermit>,
}

pub struct Sender<T> {
    tx: mpsc::UnboundedSender<Slot<T>>,
    room: Arc<Semaphore>,
    budget: usize,
    dropped: AtomicU64,
}

pub struct Receiver<T> {
    rx: mpsc::UnboundedReceiver<Slot<T>>,
}

/// A queue holding at most about `budget` bytes of items.
pub fn channel<T>(budget: usize) -> (Sender<T>, Receiver<T>) {
    let budget = budget.clamp(ITEM_OVERHEAD, Semaphore::MAX_PERMITS);
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = Sender {
        tx,
        room: Arc::new(Semaphore::new(budget)),
        budget,
        dropped: AtomicU64::new(0),
    };
    (sender, Receiver { rx })
}

impl<T> Sender<T> {
    fn cost(&self, bytes: usize) -> u32 {
        // An item larger than the whole budget still passes, alone.
        let cost = bytes.saturating_add(ITEM_OVERHEAD).min(self.budget);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    fn put(&self, item: T, room: Option<OwnedSemaphorePermit>) -> Result<(), Closed> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.tx
                .send(Slot {
                    item: Item::Dropped(dropped),
                    _room: None,
                })
                .map_err(|_| Closed)?;
        }
        self.tx
            .send(Slot {
                item: Item::Value(item),
                _room: room,
            })
            .map_err(|_| Closed)
    }

    /// Queues `item` (`bytes` long) if there is room; otherwise drops it and
    /// counts it. True if it was queued.
    pub fn offer(&self, item: T, bytes: usize) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        match Arc::clone(&self.room).try_acquire_many_owned(self.cost(bytes)) {
            Ok(room) => self.put(item, Some(room)).is_ok(),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues `item` whatever room is left: for the few items that must
    /// never be dropped (a build's stages and outcome). Their number must be
    /// bounded by the caller.
    pub fn push(&self, item: T) -> Result<(), Closed> {
        self.put(item, None)
    }

    /// Waits for room, then queues `item` (`bytes` long). Fails at once if
    /// the consumer goes away meanwhile.
    pub async fn send(&self, item: T, bytes: usize) -> Result<(), Closed> {
        let room = tokio::select! {
            room = Arc::clone(&self.room).acquire_many_owned(self.cost(bytes)) => {
                room.map_err(|_| Closed)?
            }
            () = self.tx.closed() => return Err(Closed),
        };
        self.put(item, Some(room))
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the consumer is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

impl<T> Drop for Sender<T> {
    /// Items dropped at the very end are still reported.
    fn drop(&mut self) {
        let dropped = *self.dropped.get_mut();
        if dropped > 0 {
            let _ = self.tx.send(Slot {
                item: Item::Dropped(dropped),
                _room: None,
            });
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and all is taken.
    pub async fn recv(&mut self) -> Option<Item<T>> {
        self.rx.recv().await.map(|slot| slot.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_does_not_fit_is_dropped_and_counted_in_place() {
        let (tx, mut rx) = channel::<String>(1000);
        let line = "x".repeat(400);
        // Each costs 400 + 64: two fit in 1000, the next two do not.
        for fits in [true, true, false, false] {
            assert_eq!(tx.offer(line.clone(), line.len()), fits);
        }
        tx.push("stage".into()).unwrap();
        assert_eq!(rx.recv().await, Some(Item::Value(line.clone())));
        assert_eq!(rx.recv().await, Some(Item::Value(line.clone())));
        assert_eq!(rx.recv().await, Some(Item::Dropped(2)));
        assert_eq!(rx.recv().await, Some(Item::Value("stage".into())));
        // Room came back when the lines were taken.
        assert!(tx.offer(line.clone(), line.len()));
        assert!(tx.offer(line.clone(), line.len()));
    }

    #[tokio::test]
    async fn drops_at_the_end_are_reported_when_the_sender_goes() {
        let (tx, mut rx) = channel::<u32>(100);
        assert!(tx.offer(1, 30));
        assert!(!tx.offer(2, 30));
        assert!(!tx.offer(3, 30));
        drop(tx);
        assert_eq!(rx.recv().await, Some(Item::Value(1)));
        assert_eq!(rx.recv().await, Some(Item::Dropped(2)));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn send_waits_for_room_and_gives_up_when_the_consumer_goes() {
        let (tx, mut rx) = channel::<u32>(200);
        tx.send(1, 100).await.unwrap();
        let waiting = tokio::spawn(async move {
            let result = tx.send(2, 100).await;
            (result, tx)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await, Some(Item::Value(1)));
        let (result, tx) = waiting.await.unwrap();
        result.unwrap();
        let blocked = tokio::spawn(async move { tx.send(3, 150).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(blocked.await.unwrap(), Err(Closed));
    }

    #[tokio::test]
    async fn an_item_larger_than_the_budget_passes_alone() {
        let (tx, mut rx) = channel::<u32>(100);
        assert!(tx.offer(1, 10_000));
        assert!(!tx.offer(2, 1));
        assert_eq!(rx.recv().await, Some(Item::Value(1)));
        assert!(tx.offer(3, 1));
    }
}
