//! A real `cclaunch serve` process for limit tests: spawned with extra
//! configuration, reached through its Unix socket, and measured from
//! /proc (its memory, its open sockets).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cclaunch::client::Address;
use cclaunch::proto::v1::launcher_client::LauncherClient;
use cclaunch::proto::v1::{self as pb, build_request::Source};
use tonic::transport::Channel;

use super::Env;

pub struct Sidecar {
    pub child: tokio::process::Child,
    pub socket: PathBuf,
    pub operations: String,
}

impl Sidecar {
    /// `serve` for this test's peer, with `yaml` (if not empty) as its
    /// config file and `vars` as extra environment; stderr goes to `stderr`.
    pub fn spawn(env: &Env, yaml: &str, vars: &[(&str, &str)], stderr: Stdio) -> Sidecar {
        let dir = tempfile::Builder::new()
            .prefix("sidecar")
            .tempdir_in(env.dir.path())
            .expect("sidecar dir")
            .keep();
        let socket = dir.join("cclaunch.sock");
        let operations = format!("127.0.0.1:{}", super::free_port());
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut command = super::serve_command(
            env,
            &[
                "--socket",
                socket.to_str().expect("utf-8 path"),
                "--operations",
                &operations,
            ],
        );
        if !yaml.is_empty() {
            command.arg("--config").arg(&config);
        }
        command.envs(vars.iter().copied()).stderr(stderr);
        let child = command.spawn().expect("spawn cclaunch serve");
        Sidecar {
            child,
            socket,
            operations,
        }
    }

    /// A new client connection (its own HTTP/2 connection), once the
    /// sidecar listens.
    pub async fn client(&self) -> LauncherClient<Channel> {
        let address = Address::Unix(self.socket.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match cclaunch::client::connect(&address, None, Duration::from_secs(5)).await {
                Ok(client) => return client,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!("sidecar never listened on {}: {e}", self.socket.display())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("sidecar still running")
    }

    /// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid(), field)
    }

    /// How many of the sidecar's file descriptors are sockets.
    pub fn sockets(&self) -> usize {
        sockets_of(self.pid())
    }
}

/// How many of process `pid`'s file descriptors are sockets.
pub fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("procfs")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// How many connections process `pid` holds that it accepted on the Unix
/// socket at `path`: its socket descriptors whose inode the kernel lists
/// under that path (an accepted socket carries its listener's address; the
/// listener itself and connections still in the backlog are not counted).
pub fn accepted_on(pid: u32, path: &Path) -> usize {
    let held: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("procfs")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/net/unix")
        .expect("procfs")
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
            fields.len() == 8 && fields[5] == "03" && fields[7] == path && held.contains(fields[6])
        })
        .count()
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A package file as Build chunks.
pub fn chunks(file: &Path, size: usize) -> Vec<pb::BuildRequest> {
    std::fs::read(file)
        .expect("read package")
        .chunks(size)
        .map(|c| pb::BuildRequest {
            source: Some(Source::Chunk(c.to_vec())),
        })
        .collect()
}

/// Builds `package` through the sidecar (its bytes as chunks) and starts
/// it; its container's name.
pub async fn build_and_start(
    client: &mut LauncherClient<Channel>,
    package: &cclaunch::package::Package,
) -> String {
    build(client, package).await;
    client
        .start(pb::StartRequest {
            package_id: package.id.clone(),
            peer_address: "127.0.0.1:7052".into(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner()
        .container
}

/// Builds `package` through the API, uploading it.
pub async fn build(client: &mut LauncherClient<Channel>, package: &cclaunch::package::Package) {
    use futures_util::StreamExt;
    let mut events = client
        .build(futures_util::stream::iter(chunks(&package.file, 64 << 10)))
        .await
        .expect("build")
        .into_inner();
    while let Some(event) = events.next().await {
        event.expect("build succeeds");
    }
}

/// This peer's build containers (running or not).
pub fn build_containers(peer: &str) -> Vec<String> {
    super::docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=org.cclaunch.build=true",
        "--filter",
        &format!("label=org.cclaunch.peer-id={peer}"),
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// An executable script at `dir/name`, for bind-mounting into a container.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Config that replaces the `shenv` image's /chaincode/build.sh (the node
/// build path runs it) with `build_sh`, by a read-only bind mount; `build`
/// adds keys under `cclaunch.build` (indented four spaces).
pub fn build_sh_yaml(build_sh: &Path, build: &str) -> String {
    format!(
        "cclaunch:\n  build:\n    mounts: [\"{}:/chaincode/build.sh\"]\n{build}",
        build_sh.display()
    )
}
