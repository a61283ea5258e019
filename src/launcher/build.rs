//! Build: package → image. Reuses an existing image of the Fabric name;
//! otherwise runs the platform's build container and builds the runtime image
//! from its Dockerfile and the build output (`binpackage.tar`).

use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{engine, Error, Launcher, LABEL_BUILD};
use crate::package::{self, Package};
use crate::platform::{golang, Platform};
use crate::runtime::{self, BuildJob, ByteStream, Progress};

/// Build output lines kept for the error report of a failed build.
const KEEP_BUILD_LINES: usize = 100;

#[derive(Debug, Clone)]
pub struct Built {
    pub package_id: String,
    pub image: String,
    pub platform: Platform,
    /// The image already existed and was reused.
    pub reused: bool,
}

impl Launcher {
    pub async fn build(&self, package: &Package, progress: &dyn Progress) -> Result<Built, Error> {
        let started = std::time::Instant::now();
        let result = self.build_or_reuse(package, progress).await;
        let reused = result.as_ref().is_ok_and(|b| b.reused);
        crate::metrics::build_finished(started.elapsed(), result.is_ok(), reused);
        result
    }

    async fn build_or_reuse(
        &self,
        package: &Package,
        progress: &dyn Progress,
    ) -> Result<Built, Error> {
        let package_id = package.id.as_str();
        let platform =
            Platform::from_type(&package.metadata.kind).map_err(|source| Error::Platform {
                package_id: package_id.to_string(),
                source,
            })?;
        let names = self.names(package_id)?;
        let built = |reused| Built {
            package_id: package_id.to_string(),
            image: names.image.clone(),
            platform,
            reused,
        };
        if self
            .engine
            .image_labels(&names.image)
            .await
            .map_err(engine(package_id))?
            .is_some()
        {
            tracing::info!(chaincode = package_id, image = %names.image, "image exists, reusing it");
            progress.stage("image exists, reusing it");
            return Ok(built(true));
        }

        // One engine build per image, however many callers ask at once: the
        // first builds, the others wait for its outcome and share it.
        let role = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(&names.image) {
                Some(outcome) => Err(outcome.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(names.image.clone(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match role {
            Ok(tx) => tx,
            Err(mut outcome) => {
                progress.stage("waiting for the build of this image already in progress");
                let shared = outcome.wait_for(Option::is_some).await.map(|o| o.clone());
                return match shared {
                    Ok(Some(Ok(()))) => Ok(built(true)),
                    Ok(Some(Err(message))) => Err(Error::SharedBuild {
                        package_id: package_id.to_string(),
                        message,
                    }),
                    _ => Err(Error::SharedBuild {
                        package_id: package_id.to_string(),
                        message: "the build it waited for was cancelled".into(),
                    }),
                };
            }
        };
        let _flight = Flight {
            launcher: self,
            image: names.image.clone(),
        };
        let result = self
            .build_now(package, platform, &names.image, progress)
            .await;
        let _ = tx.send(Some(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|e| crate::error_chain(e)),
        ));
        result.map(|()| built(false))
    }

    /// The engine build itself: build container, then the runtime image.
    async fn build_now(
        &self,
        package: &Package,
        platform: Platform,
        image: &str,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let package_id = package.id.as_str();
        let plan = platform
            .plan(&self.config, &package.metadata.path, &|key| {
                std::env::var(key).ok()
            })
            .map_err(|source| Error::Platform {
                package_id: package_id.to_string(),
                source,
            })?;
        let build = &self.config.cclaunch.build;
        let mut labels = self.labels(package_id);
        labels.insert(LABEL_BUILD.to_string(), "true".to_string());
        let job = BuildJob {
            image: plan.builder_image.clone(),
            script: plan.script,
            env: plan
                .env
                .into_iter()
                .chain(build.env.iter().cloned())
                .collect(),
            network_mode: build.network_mode.clone(),
            mounts: build.mounts.clone(),
            labels,
        };
        tracing::info!(chaincode = package_id, builder = %job.image, "building chaincode");
        progress.stage(&format!("compiling in {}", job.image));

        let recorder = Recorder {
            inner: progress,
            lines: Mutex::default(),
        };
        let binpackage = match self
            .engine
            .run_build(&job, code_stream(package), &recorder)
            .await
        {
            Ok(path) => path,
            Err(runtime::Error::BuildFailed { image, code }) => {
                let output = recorder
                    .lines
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner());
                return Err(Error::BuildFailed {
                    package_id: package_id.to_string(),
                    builder: image,
                    code,
                    hint: go_hint(platform, package, &output),
                    output: output.into_iter().collect(),
                });
            }
            Err(e) => return Err(engine(package_id)(e)),
        };

        let dockerfile = plan.dockerfile;
        let context = tokio::task::spawn_blocking(move || build_context(&dockerfile, &binpackage))
            .await
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|source| Error::Io {
                package_id: package_id.to_string(),
                context: "writing the image build context".into(),
                source,
            })?;
        let network_mode = self
            .config
            .vm
            .docker
            .host_config
            .network_mode
            .clone()
            .unwrap_or_default();
        progress.stage(&format!("building image {image}"));
        self.engine
            .build_image(
                image,
                &image_labels(package_id),
                context.to_path_buf(),
                self.config.chaincode.pull,
                &network_mode,
                progress,
            )
            .await
            .map_err(engine(package_id))?;
        tracing::info!(chaincode = package_id, image, "built image");
        Ok(())
    }
}

/// Removes an image's in-flight entry when its build ends, also when the
/// leading caller is cancelled (its waiters then see the channel close).
struct Flight<'a> {
    launcher: &'a Launcher,
    image: String,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.launcher
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.image);
    }
}

/// The classic builder turns every label into a build step of its own, so
/// images carry only what garbage collection needs.
fn image_labels(package_id: &str) -> runtime::Labels {
    runtime::Labels::from([
        (runtime::LABEL_MANAGED.to_string(), "true".to_string()),
        (
            runtime::LABEL_PACKAGE_ID.to_string(),
            package_id.to_string(),
        ),
    ])
}

/// Keeps the last build lines while passing them on.
struct Recorder<'a> {
    inner: &'a dyn Progress,
    lines: Mutex<std::collections::VecDeque<String>>,
}

impl Progress for Recorder<'_> {
    fn stage(&self, stage: &str) {
        self.inner.stage(stage);
    }

    fn line(&self, line: &str) {
        self.inner.line(line);
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEEP_BUILD_LINES {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }
}

/// The package's code.tar.gz as a stream, read on a blocking thread through a
/// small bounded channel (memory stays flat whatever the package size).
fn code_stream(package: &Package) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let package = package.clone();
    tokio::task::spawn_blocking(move || {
        let result = package.read_code(|chunk| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                .map_err(|_| io::Error::other("build container upload ended early"))
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Fabric's runtime build context: a gzip'd tar of `Dockerfile` and
/// `binpackage.tar`, both mode 0100644.
fn build_context(dockerfile: &str, binpackage: &Path) -> io::Result<tempfile::TempPath> {
    let file = tempfile::NamedTempFile::new()?;
    let (out, path) = file.into_parts();
    let gz = flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = package::file_header(dockerfile.len() as u64);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    let bin = std::fs::File::open(binpackage)?;
    let mut header = package::file_header(bin.metadata()?.len());
    tar.append_data(&mut header, "binpackage.tar", bin)?;
    let mut writer = tar.into_inner()?.finish()?;
    writer.flush()?;
    Ok(path)
}

/// A Go build that failed on a builder older than go.mod asks for is the most
/// common chaincode build failure ("toolchain drift"); say so plainly.
fn go_hint(
    platform: Platform,
    package: &Package,
    output: &std::collections::VecDeque<String>,
) -> String {
    if platform != Platform::Golang {
        return String::new();
    }
    let Some(wanted) = package.go_mod.as_deref().and_then(golang::required_go) else {
        return String::new();
    };
    let drift = output.iter().any(|l| {
        l.contains("requires go >=")
            || l.contains("module requires Go")
            || l.contains("invalid go version")
            || l.contains("unknown directive: toolchain")
    });
    if drift {
        format!(
            "\nhint: src/go.mod asks for Go {wanted}, newer than the Go in the builder image (chaincode.builder); use a newer builder image or lower the go directive"
        )
    } else {
        String::new()
    }
}
