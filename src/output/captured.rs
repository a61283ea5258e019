//! For tests: the lines the chaincode loggers received on this thread.

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;

/// What the `peer.chaincode.*` loggers received: (container, line).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<(String, String)>>>);

impl Captured {
    /// Captures on this thread (a current-thread runtime's tasks included)
    /// until the guard is dropped.
    pub fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// The lines mirrored for `container`, in order.
    pub fn of(&self, container: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter(|(c, _)| c == container)
            .map(|(_, line)| line.clone())
            .collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let Some(container) = event.metadata().target().strip_prefix("peer.chaincode.") else {
            return;
        };
        let mut line = Message(String::new());
        event.record(&mut line);
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.push((container.to_string(), line.0));
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
