//! One run of a build container, as Fabric's build runs one: the package's
//! code unpacked at /chaincode/input, the platform's script run with
//! `/bin/sh -c`, its output lines passed on, /chaincode/output downloaded as
//! a tar. The container is removed whatever happens: before this returns
//! when the job failed, timed out or its callers all went away; beside what
//! the caller does next when it succeeded (see [`Done::removed`]).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::caches;
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
    /// [`caches::MOUNT`].
    pub volume: Option<(String, runtime::Labels)>,
    /// The cache volume's size cap in bytes (0: none). With one, the volume
    /// is measured before the script runs, by the builder image's own `du`
    /// in a container no chaincode code had run in yet, and read from the
    /// first output line only, so what the build's code prints or changes
    /// cannot alter it; a volume found over the cap is removed after the
    /// job (see [`caches::trim`]).
    pub cache_cap: u64,
    /// The package id, for what the job logs.
    pub chaincode: String,
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

/// What a job that succeeded leaves.
#[derive(Debug)]
pub(super) struct Done {
    /// /chaincode/output as a tar.
    pub output: tempfile::TempPath,
    /// The container's removal, under way (the cache's trim starts after
    /// it, on its own). Removing a Go build's layer takes 0.1-0.3 s, so the
    /// image build goes on beside it; the caller awaits it before it
    /// returns. A container not removed (an engine error, a process killed
    /// first) is left to [`leftovers`](super::leftovers).
    pub removed: tokio::task::JoinHandle<Result<(), runtime::Error>>,
}

/// The first line a measuring job prints, before the size.
const CACHE_LINE: &str = "cclaunch build cache KiB: ";

/// `job.script`, after the measurement when one is asked for. The size goes
/// to stdout as the container's first line; the script runs next in the
/// same shell, its text unchanged.
fn script(job: &Job) -> String {
    if job.cache_cap > 0 && job.volume.is_some() {
        format!(
            "echo \"{CACHE_LINE}$(du -sk {} 2>/dev/null)\"\n{}",
            caches::MOUNT,
            job.script
        )
    } else {
        job.script.clone()
    }
}

/// The size in a measuring job's first line (`du -sk` says `<KiB>\t<dir>`).
fn cache_kib(first_line: &str) -> Option<u64> {
    first_line
        .strip_prefix(CACHE_LINE)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The measurement among a job's output lines: only the first line can be
/// it, and it is not the build's output, so it is not passed on.
struct Measurement {
    pending: bool,
    kib: Option<u64>,
}

impl Measurement {
    fn expected(measured: bool) -> Measurement {
        Measurement {
            pending: measured,
            kib: None,
        }
    }

    /// Whether `line` was the measurement (and so is not output).
    fn takes(&mut self, line: &str) -> bool {
        if !std::mem::take(&mut self.pending) {
            return false;
        }
        self.kib = cache_kib(line);
        line.starts_with(CACHE_LINE)
    }
}

/// Runs `job` with `input` (a tar, possibly gzip'd) as its code.
pub(super) async fn run(
    engine: &Arc<dyn Engine>,
    job: &Job,
    input: ByteStream,
    progress: &dyn Progress,
) -> Result<Done, Ended> {
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
        args: vec!["/bin/sh".into(), "-c".into(), script(job)],
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
        result = steps(engine.as_ref(), &id, input, progress, job.cache_cap > 0) => result,
        () = tokio::time::sleep_until(job.deadline) => Err(Ended::TimedOut),
        () = job.cancel.cancelled() => Err(Ended::Cancelled),
    };
    guard.disarm();
    let remove = {
        let engine = Arc::clone(engine);
        async move {
            match engine.remove_container(&id).await {
                Err(runtime::Error::NotFound { .. }) => Ok(()),
                removed => removed,
            }
        }
    };
    match result {
        Ok((output, cache_kib)) => {
            let (engine, volume) = (Arc::clone(engine), job.volume.clone());
            let (cap, chaincode) = (job.cache_cap, job.chaincode.clone());
            let removed = tokio::spawn(async move {
                remove.await?;
                // Only now: the engine refuses a volume a container holds.
                // Off the build's road: deleting a full cache takes a while.
                if let Some((volume, _)) = volume {
                    tokio::spawn(async move {
                        caches::trim(engine.as_ref(), &volume, cache_kib, cap, &chaincode).await;
                    });
                }
                Ok(())
            });
            Ok(Done { output, removed })
        }
        Err(ended) => {
            // What ended the job is the error; a removal that failed too
            // leaves the container to `leftovers`.
            if let Err(error) = remove.await {
                tracing::warn!(chaincode = job.chaincode, %error, "build container not removed");
            }
            Err(ended)
        }
    }
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
        host = host.with_volume(name, caches::MOUNT, labels);
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
    measured: bool,
) -> Result<(tempfile::TempPath, Option<u64>), Ended> {
    // Fabric's builder images have /chaincode/{input,output}; an image
    // without them gets them, so it fails on the build, not the upload.
    // Looked at first (two stats, about 10 ms) rather than always put in
    // (an upload is a re-executed untar in dockerd, about 60 ms).
    let (input_dir, output_dir) = tokio::join!(
        engine.has_file(id, "/chaincode/input"),
        engine.has_file(id, "/chaincode/output")
    );
    if !matches!((input_dir, output_dir), (Ok(true), Ok(true))) {
        engine.upload(id, "/", dirs_tar()?).await?;
    }
    engine.upload_stream(id, "/chaincode/input", input).await?;
    let mut output = engine.attach(id).await?;
    engine.start_container(id).await?;
    let mut lines = Lines::new(MAX_LINE);
    let mut cache = Measurement::expected(measured);
    let mut pass = |text: &str| {
        if !cache.takes(text) {
            progress.line(text);
        }
    };
    while let Some(frame) = output.next().await {
        match frame? {
            Output::Stdout(bytes) | Output::Stderr(bytes) => {
                lines.push(&bytes, |line| pass(&line.text));
            }
        }
    }
    lines.finish(|line| pass(&line.text));
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
    Ok((path, cache.kib))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(measure_cache: bool, volume: bool) -> Job {
        Job {
            image: "ccenv".into(),
            script: "set -e\ngo build ./...".into(),
            env: Vec::new(),
            network_mode: String::new(),
            mounts: Vec::new(),
            volume: volume.then(|| ("v".to_string(), runtime::Labels::new())),
            cache_cap: u64::from(measure_cache),
            chaincode: "cc:1".into(),
            labels: runtime::Labels::new(),
            deadline: tokio::time::Instant::now(),
            cancel: CancellationToken::new(),
        }
    }

    #[test]
    fn the_measurement_comes_first_and_the_script_unchanged_after_it() {
        let measured = script(&job(true, true));
        let (first, rest) = measured.split_once('\n').expect("two parts");
        assert_eq!(
            first,
            "echo \"cclaunch build cache KiB: $(du -sk /cclaunch-cache 2>/dev/null)\""
        );
        assert_eq!(rest, "set -e\ngo build ./...");
        // Nothing to measure, or not asked: Fabric's script alone.
        assert_eq!(script(&job(true, false)), "set -e\ngo build ./...");
        assert_eq!(script(&job(false, true)), "set -e\ngo build ./...");
    }

    #[test]
    fn the_size_is_read_from_du_s_line_only() {
        assert_eq!(
            cache_kib("cclaunch build cache KiB: 1234\t/cclaunch-cache"),
            Some(1234)
        );
        // du failed (no du in the image): no size, no guess.
        assert_eq!(cache_kib("cclaunch build cache KiB: "), None);
        assert_eq!(cache_kib("cclaunch build cache KiB: lots"), None);
        assert_eq!(cache_kib("go: downloading example.com/x"), None);
    }

    #[test]
    fn only_the_first_line_is_the_measurement() {
        let mut m = Measurement::expected(true);
        assert!(m.takes("cclaunch build cache KiB: 10\t/cclaunch-cache"));
        // The build's code printing the same later is output, and changes
        // nothing.
        assert!(!m.takes("cclaunch build cache KiB: 0\t/cclaunch-cache"));
        assert_eq!(m.kib, Some(10));
        // du missing: ours, but no size.
        let mut m = Measurement::expected(true);
        assert!(m.takes("cclaunch build cache KiB: "));
        assert_eq!(m.kib, None);
        // A first line that is not one stays output.
        let mut m = Measurement::expected(true);
        assert!(!m.takes("sh: echo: not found"));
        assert!(!m.takes("cclaunch build cache KiB: 0\t/cclaunch-cache"));
        assert_eq!(m.kib, None);
        // Not measured: every line is output.
        let mut m = Measurement::expected(false);
        assert!(!m.takes("cclaunch build cache KiB: 0\t/cclaunch-cache"));
        assert_eq!(m.kib, None);
    }
}
