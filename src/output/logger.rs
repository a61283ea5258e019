//! The loggers chaincode output goes into: `peer.chaincode.<container name>`,
//! as a Fabric peer names them.
//!
//! tracing's macros only take static targets, so each container gets its own
//! registered callsite (made once per container name and kept): filters such as
//! `RUST_LOG=peer.chaincode.dev-peer0-mycc-1=off` then work as for any target.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::{Kind, Level, Metadata};
use tracing_core::{Event, Interest};

/// A logger named `peer.chaincode.<container>`.
#[derive(Clone, Copy)]
pub struct ChaincodeLogger {
    callsite: &'static LoggerCallsite,
}

struct LoggerCallsite {
    metadata: OnceLock<Metadata<'static>>,
}

impl Callsite for LoggerCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'static> {
        self.metadata
            .get()
            .expect("metadata is set before the callsite is registered")
    }
}

static LOGGERS: OnceLock<Mutex<HashMap<String, &'static LoggerCallsite>>> = OnceLock::new();

impl ChaincodeLogger {
    /// The logger for a container; made once per name and then reused (each
    /// costs a few hundred bytes for the life of the process).
    pub fn new(container: &str) -> ChaincodeLogger {
        let mut loggers = LOGGERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let callsite = *loggers.entry(container.to_string()).or_insert_with(|| {
            let target: &'static str =
                Box::leak(format!("peer.chaincode.{container}").into_boxed_str());
            let callsite: &'static LoggerCallsite = Box::leak(Box::new(LoggerCallsite {
                metadata: OnceLock::new(),
            }));
            let fields = FieldSet::new(&["message"], Identifier(callsite));
            let _ = callsite.metadata.set(Metadata::new(
                "chaincode output",
                target,
                Level::INFO,
                None,
                None,
                None,
                fields,
                Kind::EVENT,
            ));
            tracing_core::callsite::register(callsite);
            callsite
        });
        ChaincodeLogger { callsite }
    }

    pub fn target(&self) -> &'static str {
        self.callsite.metadata().target()
    }

    /// Logs one line at info.
    pub fn info(&self, line: &str) {
        let metadata = self.callsite.metadata();
        let enabled = tracing_core::dispatcher::get_default(|d| d.enabled(metadata));
        if !enabled {
            return;
        }
        let fields = metadata.fields();
        let Some(field) = fields.field("message") else {
            return;
        };
        let message = format_args!("{line}");
        let values = [(&field, Some(&message as &dyn tracing_core::field::Value))];
        Event::dispatch(metadata, &fields.value_set(&values));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggers_are_named_after_the_container_and_reused() {
        let a = ChaincodeLogger::new("dev-peer0-cc-1");
        let b = ChaincodeLogger::new("dev-peer0-cc-1");
        assert_eq!(a.target(), "peer.chaincode.dev-peer0-cc-1");
        assert!(std::ptr::eq(a.callsite, b.callsite));
    }
}
