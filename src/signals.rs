//! SIGTERM and SIGINT, the two ways a process here is asked to end: one
//! helper for every face that waits for them.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT, registered up front (a signal that arrives before
/// [`Signals::recv`] is asked is not lost).
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the first signal that arrives: `SIGTERM` or `SIGINT`.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The exit code of a process ended by `signal` (a name [`Signals::recv`]
/// gives), as a shell reports it: 128 + the signal's number.
pub fn exit_code(signal: &str) -> i32 {
    match signal {
        "SIGINT" => 130,
        _ => 143,
    }
}

/// Resolves on SIGINT or SIGTERM (on SIGINT alone if SIGTERM cannot be
/// handled). Both are handled from this call on, not from the first poll:
/// a sidecar asked to end while it starts up ends cleanly once it serves.
pub fn shutdown() -> impl std::future::Future<Output = ()> {
    let signals = Signals::new();
    async move {
        match signals {
            Ok(mut signals) => {
                signals.recv().await;
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
