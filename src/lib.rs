//! cclaunch: a chaincode launcher that runs beside a Hyperledger Fabric peer.
//!
//! Data flows one way: a [`package::Package`] is validated, a
//! [`platform::Platform`] turns it into a build plan, the [`launcher::Launcher`]
//! drives a [`runtime::Engine`] to build and start it, and [`logs`] mirrors the
//! container's output. The CLI is a thin face over the launcher.

pub mod api;
pub mod atomic;
pub mod builder;
pub mod ccid;
pub mod cli;
pub mod client;
pub mod config;
pub mod devpeer;
pub mod excerpt;
pub mod launch;
pub mod launcher;
pub mod metrics;
pub mod naming;
pub mod nofile;
pub mod output;
pub mod package;
pub mod platform;
pub mod printable;
pub mod proto;
pub mod queue;
pub mod rate;
pub mod runtime;
pub mod signals;
pub mod wire;

/// An error and its causes on one line, each once (`a: b: c`), for messages
/// that cross a boundary as text (gRPC status, shared build outcomes) and for
/// the CLI's last word. A cause whose text is already there (some errors,
/// transport ones among them, repeat their source in their own message) is
/// not said twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_chain_says_each_cause_once() {
        let error = Layer(
            "cannot reach x",
            Some(Box::new(Layer(
                "transport error: refused",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(
            super::error_chain(&error),
            "cannot reach x: transport error: refused"
        );
    }
}
