//! Build progress on the terminal: a spinner with the latest build line when
//! stderr is a terminal, plain prefixed lines otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::printable::{render, Sgr};
use crate::runtime::Progress;

pub struct BuildProgress {
    bar: Option<ProgressBar>,
    prefix: String,
}

impl BuildProgress {
    pub fn new(what: &str) -> BuildProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed}] {prefix}: {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        BuildProgress {
            bar,
            prefix: what.to_string(),
        }
    }

    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_string()),
            None => eprintln!("{}: {message}", self.prefix),
        }
    }
}

impl Progress for BuildProgress {
    fn stage(&self, stage: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(stage.to_string()),
            None => eprintln!("{}: {stage}", self.prefix),
        }
    }

    /// A line of the build's output: the build runs the chaincode's own
    /// scripts, so its control characters are shown, not obeyed.
    fn line(&self, line: &str) {
        let line = render(line, Sgr::Strip);
        match &self.bar {
            Some(bar) => bar.set_message(line.into_owned()),
            None => eprintln!("{} | {line}", self.prefix),
        }
    }
}

impl Drop for BuildProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
