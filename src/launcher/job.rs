//! One run of a build container, as Fabric's build runs one: the package's
//! code unpacked at /chaincode/input, the platform's script run with
//! `/bin/sh -c`, its output lines passed on, /chaincode/output downloaded as
//! a tar. The container is removed whatever happens, before this returns:
//! also when the job's deadline passes or its callers all went away.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::output::Lines;
use crate::runtime::{
    self, ByteStream, ContainerSpec, Engine, HostConfig, Output, Progress, RemoveOnDrop, Runner,
};

/// A build output line longer than this comes out in pieces.
const MAX_LINE: usize = 64 << 10;

/// One run of a build container.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub image: String,
    pub script: String,
    pub env: Vec<String>,
    /// Empty: the engine's default network.
    pub network_mode: String,
    /// Read-only `host:container` bind mounts.
    pub mounts: Vec<String>,
    /// A build cache volume (name, labels it is made with), read-write at
    /// [`caches::MOUNT`](super::caches::MOUNT).
    pub volume: Option<(String, runtime::Labels)>,
    pub labels: runtime::Labels,
    pub deadline: tokio::time::Instant,
    pub cancel: CancellationToken,
}

/// How a job ended, when not with its output.
#[derive(Debug)]
pub(super) enum Ended {
    /// The script exited non-zero.
    Failed {
        code: i64,
    },
    TimedOut,
    Cancelled,
    Engine(runtime::Error),
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

impl From<runtime::Error> for Ended {
    fn from(error: runtime::Error) -> Ended {
        Ended::Engine(error)
    }
}

/// Runs `job` with `input` (a tar, possibly gzip'd) as its code; a file
/// holding /chaincode/output as a tar.
pub(super) async fn run(
    engine: &Arc<dyn Engine>,
    job: &Job,
    input: ByteStream,
    progress: &dyn Progress,
) -> Result<tempfile::TempPath, Ended> {
    let binds: Vec<String> = job
        .mounts
        .iter()
        .map(|m| {
            if m.ends_with(":ro") {
                m.clone()
            } else {
                format!("{m}:ro")
            }
        })
        .collect();
    let spec = ContainerSpec {
        name: String::new(),
        image: job.image.clone(),
        args: vec!["/bin/sh".into(), "-c".into(), job.script.clone()],
        env: job.env.clone(),
        labels: job.labels.clone(),
        host_config: build_host(&job.network_mode, &binds, job.volume.as_ref()),
        files: Vec::new(),
    };
    let id = engine.create_container(&spec).await.map_err(|e| match e {
        runtime::Error::NotFound { .. } => Ended::Engine(runtime::Error::NotFound {
            what: format!(
                "builder image {} (chaincode.builder or chaincode.<lang>.runtime; cclaunch never pulls it)",
                job.image
            ),
        }),
        e => Ended::Engine(e),
    })?;
    let guard = RemoveOnDrop::new(Arc::clone(engine) as Arc<dyn Runner>, &id);
    // Ended from here, not by dropping this future, so the container is
    // gone before the caller hears of the timeout or cancellation.
    let result = tokio::select! {
        result = steps(engine.as_ref(), &id, input, progress) => result,
        () = tokio::time::sleep_until(job.deadline) => Err(Ended::TimedOut),
        () = job.cancel.cancelled() => Err(Ended::Cancelled),
    };
    guard.disarm();
    let removed = match engine.remove_container(&id).await {
        Err(runtime::Error::NotFound { .. }) => Ok(()),
        removed => removed,
    };
    let path = result?;
    removed?;
    Ok(path)
}

/// A build container's host: the configured network (empty: the engine's
/// default), the mounts and the cache, nothing else of the chaincode's host
/// config.
fn build_host(
    network_mode: &str,
    binds: &[String],
    volume: Option<&(String, runtime::Labels)>,
) -> HostConfig {
    let mut host = HostConfig::default();
    if let Some((name, labels)) = volume {
        host = host.with_volume(name, super::caches::MOUNT, labels);
    }
    if !network_mode.is_empty() {
        host = host.with_network_mode(network_mode);
    }
    if !binds.is_empty() {
        host = host.with_binds(binds);
    }
    host
}

async fn steps(
    engine: &dyn Engine,
    id: &str,
    input: ByteStream,
    progress: &dyn Progress,
) -> Result<tempfile::TempPath, Ended> {
    // Builder images are expected to have /chaincode/{input,output}; make
    // sure, so an image without them fails on the build, not the upload.
    engine.upload(id, "/", dirs_tar()?).await?;
    engine.upload_stream(id, "/chaincode/input", input).await?;
    let mut output = engine.attach(id).await?;
    engine.start_container(id).await?;
    let mut lines = Lines::new(MAX_LINE);
    while let Some(frame) = output.next().await {
        match frame? {
            Output::Stdout(bytes) | Output::Stderr(bytes) => {
                lines.push(&bytes, |line| progress.line(&line.text));
            }
        }
    }
    lines.finish(|line| progress.line(&line.text));
    let code = engine.wait_container(id).await?;
    if code != 0 {
        return Err(Ended::Failed { code });
    }
    let io = |context| move |source| Ended::Io { context, source };
    let file =
        tempfile::NamedTempFile::new().map_err(io("creating a temp file for build output"))?;
    let (file, path) = file.into_parts();
    let mut out = tokio::fs::File::from_std(file);
    let mut archive = engine.download(id, "/chaincode/output/.").await?;
    while let Some(chunk) = archive.next().await {
        out.write_all(&chunk?)
            .await
            .map_err(io("writing build output"))?;
    }
    out.flush().await.map_err(io("writing build output"))?;
    Ok(path)
}

/// A tar creating /chaincode/input and /chaincode/output.
fn dirs_tar() -> Result<Bytes, Ended> {
    let io = |source| Ended::Io {
        context: "making build directories",
        source,
    };
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["chaincode/", "chaincode/input/", "chaincode/output/"] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())
            .map_err(io)?;
    }
    tar.into_inner().map(Bytes::from).map_err(io)
}
