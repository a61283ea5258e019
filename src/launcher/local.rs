//! [`Launch`] on this process's launcher: each call one launcher call, its
//! error given its kind, its output split into lines (the one splitter).

use std::collections::VecDeque;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{Error, Launcher};
use crate::launch::{
    self, Built, Chaincode, Collected, Health, Launch, Line, LineStream, LogQuery, Progress,
    Selection, StartRequest, Started, Stream,
};
use crate::output::Lines;
use crate::runtime::{self, Output, OutputStream};

/// How long a follower waits for this process's mirror of a chaincode to
/// reach the end of its output, once the chaincode exited.
const LAST_LINES: std::time::Duration = std::time::Duration::from_secs(10);

impl From<Error> for launch::Error {
    fn from(error: Error) -> launch::Error {
        launch::Error::new(error.kind(), error)
    }
}

#[async_trait]
impl Launch for Launcher {
    async fn build(
        &self,
        package: &crate::package::Package,
        progress: &dyn Progress,
    ) -> Result<Built, launch::Error> {
        Ok(Launcher::build(self, package, progress).await?)
    }

    async fn start(&self, request: StartRequest) -> Result<Started, launch::Error> {
        Ok(Launcher::start(self, request).await?)
    }

    async fn stop(&self, package_id: &str) -> Result<String, launch::Error> {
        Launcher::stop(self, package_id).await?;
        Ok(self.names(package_id)?.container)
    }

    async fn wait(&self, package_id: &str) -> Result<i64, launch::Error> {
        Ok(Launcher::wait(self, package_id).await?)
    }

    async fn logs(&self, package_id: &str, query: LogQuery) -> Result<LineStream, launch::Error> {
        let query = runtime::LogQuery {
            follow: query.follow,
            tail: query.tail,
            since: query.since,
            timestamps: false,
        };
        let output = Launcher::logs(self, package_id, &query).await?;
        let max = self.config().cclaunch.output.max_line_bytes;
        Ok(lines(output, max, package_id.to_string()))
    }

    async fn list(&self) -> Result<Vec<Chaincode>, launch::Error> {
        Ok(Launcher::list(self)
            .await?
            .into_iter()
            .map(|c| Chaincode {
                package_id: c
                    .labels
                    .get(runtime::LABEL_PACKAGE_ID)
                    .cloned()
                    .unwrap_or_default(),
                container: c.name,
                state: c.status,
                running: c.running,
                exit_code: c.exit_code,
            })
            .collect())
    }

    async fn gc(&self, selection: &Selection) -> Result<Collected, launch::Error> {
        Ok(Launcher::gc(self, selection).await?)
    }

    async fn health(&self) -> Result<Health, launch::Error> {
        let info = Launcher::health(self).await?;
        let engine = &self.config().cclaunch.engine;
        // What answered: the runner (the builds' engine answered too).
        let (reached, kind) = match engine.kind {
            crate::config::EngineKind::Kubernetes => (
                match engine.kubernetes.kubeconfig.as_str() {
                    "" => "Kubernetes (in-cluster)".to_string(),
                    kubeconfig => format!("Kubernetes of {kubeconfig}"),
                },
                "Kubernetes",
            ),
            _ => (self.config().vm.endpoint.clone(), "Docker"),
        };
        Ok(Health {
            reached,
            engine: kind.to_string(),
            version: info.version,
            api_version: info.api_version,
        })
    }

    fn exclusive(&self) -> Result<(), launch::Error> {
        Ok(self.check_unserved()?)
    }

    async fn drain(&self, package_id: &str) {
        let _ = tokio::time::timeout(LAST_LINES, self.output_closed(package_id)).await;
    }
}

/// A container's output frames as lines, each stream split on its own.
fn lines(output: OutputStream, max: usize, package_id: String) -> LineStream {
    struct State {
        output: OutputStream,
        stdout: Lines,
        stderr: Lines,
        ready: VecDeque<Line>,
        ended: bool,
        package_id: String,
    }
    let state = State {
        output,
        stdout: Lines::new(max),
        stderr: Lines::new(max),
        ready: VecDeque::new(),
        ended: false,
        package_id,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(line) = s.ready.pop_front() {
                return Some((Ok(line), s));
            }
            if s.ended {
                return None;
            }
            let ready = &mut s.ready;
            let to = |stream| {
                move |l: crate::output::Line| Line {
                    text: l.text,
                    stream,
                }
            };
            match s.output.next().await {
                Some(Ok(Output::Stdout(bytes))) => s
                    .stdout
                    .push(&bytes, |l| ready.push_back(to(Stream::Stdout)(l))),
                Some(Ok(Output::Stderr(bytes))) => s
                    .stderr
                    .push(&bytes, |l| ready.push_back(to(Stream::Stderr)(l))),
                Some(Err(e)) => {
                    s.ended = true;
                    let error = super::engine(&s.package_id)(e);
                    return Some((Err(error.into()), s));
                }
                None => {
                    s.ended = true;
                    s.stdout.finish(|l| ready.push_back(to(Stream::Stdout)(l)));
                    s.stderr.finish(|l| ready.push_back(to(Stream::Stderr)(l)));
                }
            }
        }
    }))
}
