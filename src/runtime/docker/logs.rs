//! A container's output and end: attach, the logged output, wait.

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{AttachContainerOptions, LogsOptions};
use futures_util::StreamExt;

use super::{within, Docker};
use crate::runtime::{Error, LogQuery, Output, OutputStream};

impl Docker {
    pub(super) async fn attach(&self, container: &str) -> Result<OutputStream, Error> {
        // No log replay: cclaunch attaches before start, so there is nothing
        // to replay, and an engine slow to answer would replay lines the
        // stream (attached first) also delivers: seen twice under load.
        let options = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            logs: false,
            ..Default::default()
        };
        // The stream lasts as long as the container; attaching does not.
        let attached = within(
            "attach to container",
            container,
            self.timeouts.request,
            async {
                self.client
                    .attach_container(container, Some(options))
                    .await
                    .map_err(self.fail("attach to container", container))
            },
        )
        .await?;
        Ok(output_stream(
            attached.output,
            self.clone(),
            container.to_string(),
        ))
    }

    pub(super) async fn wait_container(&self, container: &str) -> Result<i64, Error> {
        // The engine answers at once and sends the exit code when there is
        // one: only the answer is timed.
        let mut stream = self.quick.wait_container(container, None);
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error; it is an exit code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.fail_after(
                "wait for container",
                container,
                self.timeouts.request,
            )(e)),
            None => Err(Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: format!("wait for container {container}: the engine closed the stream"),
            }),
        }
    }

    pub(super) async fn logs(
        &self,
        container: &str,
        query: &LogQuery,
    ) -> Result<OutputStream, Error> {
        // Fail early on an unknown container rather than inside the stream.
        if self.inspect_container(container).await?.is_none() {
            return Err(Error::NotFound {
                what: format!("container {container}"),
            });
        }
        Ok(self.logs_of_listed(container, query))
    }

    /// The logs of a container known to exist (see `Runner::logs_of_listed`).
    pub(super) fn logs_of_listed(&self, container: &str, query: &LogQuery) -> OutputStream {
        // Only the engine's first answer is timed; a followed log then lasts.
        let stream = self.quick.logs(container, Some(logs_options(query)));
        output_stream(stream, self.clone(), container.to_string())
    }
}

/// The engine's log options for `query`, containers' and services' alike.
pub(in crate::runtime) fn logs_options(query: &LogQuery) -> LogsOptions {
    LogsOptions {
        follow: query.follow,
        stdout: true,
        stderr: true,
        tail: query
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string()),
        // The engine API takes an i32; later times are clamped, not wrapped.
        since: i32::try_from(query.since.max(0)).unwrap_or(i32::MAX),
        timestamps: query.timestamps,
        ..Default::default()
    }
}

fn output_stream(
    stream: impl futures_util::Stream<Item = Result<LogOutput, BollardError>> + Send + 'static,
    docker: Docker,
    target: String,
) -> OutputStream {
    Box::pin(stream.filter_map(move |frame| {
        let fail = docker.clone();
        let target = target.clone();
        async move {
            match frame {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(Output::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(fail.fail_after(
                    "read output of",
                    &target,
                    fail.timeouts.request,
                )(e))),
            }
        }
    }))
}
