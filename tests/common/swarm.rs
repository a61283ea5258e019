//! The swarm lab of tests/cluster: a manager and two workers, each a dockerd
//! in a network namespace of its own, joined by a bridge in a hub namespace
//! that also runs a registry. `tests/cluster/with-swarm.sh CMD` brings one up
//! and exports where everything is; [`Lab::from_env`] reads that, and is
//! `None` outside the wrapper (the test then skips, saying so).
//!
//! Network rule: the lab's addresses (10.99.0.0/24) exist only inside its
//! namespaces. The host's namespace has no route there: a server the
//! workers must reach listens in the hub ([`Lab::in_hub`]), and the test talks
//! to the daemons through their unix sockets.

use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;

/// A running lab, as `with-swarm.sh` exported it.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `unix://` endpoint of the manager's dockerd (swarm API, builds, pushes).
    pub manager: String,
    /// `unix://` endpoints of the workers' dockerds, w1 then w2.
    pub workers: Vec<String>,
    /// `host:port` of the lab registry (plain HTTP; the nodes reach it).
    pub registry: String,
    /// Name of the hub's network namespace (under /run/netns).
    pub hub_netns: String,
    /// The hub's address on the lab bridge: where test servers listen.
    pub hub_addr: IpAddr,
    /// The lab directory (tests/cluster/lab.sh describes its layout).
    pub dir: PathBuf,
    /// The lab's prefix: node hostnames are `<prefix>-mgr`, `<prefix>-w1`, ...
    pub prefix: String,
}

const VARS: [&str; 7] = [
    "CCLAUNCH_SWARM_MANAGER",
    "CCLAUNCH_SWARM_WORKERS",
    "CCLAUNCH_SWARM_REGISTRY",
    "CCLAUNCH_SWARM_HUB_NETNS",
    "CCLAUNCH_SWARM_HUB_ADDR",
    "CCLAUNCH_SWARM_LAB",
    "CCLAUNCH_SWARM_PREFIX",
];

impl Lab {
    /// The lab the wrapper exported, or `None` (with a line on stderr naming
    /// the test, from its thread's name, and how to run it) when the
    /// variables are absent.
    pub fn from_env() -> Option<Lab> {
        let get = super::lab_vars(
            &VARS,
            "swarm lab",
            "tests/cluster/with-swarm.sh, as `make test-swarm` does",
        )?;
        Some(Lab {
            manager: get("CCLAUNCH_SWARM_MANAGER"),
            workers: get("CCLAUNCH_SWARM_WORKERS")
                .split_whitespace()
                .map(String::from)
                .collect(),
            registry: get("CCLAUNCH_SWARM_REGISTRY"),
            hub_netns: get("CCLAUNCH_SWARM_HUB_NETNS"),
            hub_addr: get("CCLAUNCH_SWARM_HUB_ADDR")
                .parse()
                .expect("CCLAUNCH_SWARM_HUB_ADDR is an IP address"),
            dir: PathBuf::from(get("CCLAUNCH_SWARM_LAB")),
            prefix: get("CCLAUNCH_SWARM_PREFIX"),
        })
    }

    /// The `unix://` endpoint of node `name` (`mgr`, `w1`, `w2`).
    pub fn endpoint(&self, name: &str) -> String {
        format!("unix://{}/{name}/docker.sock", self.dir.display())
    }

    /// The node name (`mgr`, `w1`, `w2`) of a swarm hostname.
    pub fn node_of_hostname(&self, hostname: &str) -> Option<String> {
        hostname
            .strip_prefix(&format!("{}-", self.prefix))
            .map(String::from)
    }

    /// A lab script (tests/cluster/NAME) with the lab's environment.
    pub fn script(&self, name: &str) -> Command {
        let mut command = Command::new(super::repo().join("tests/cluster").join(name));
        command
            .env("CCLAUNCH_SWARM_PREFIX", &self.prefix)
            .env("CCLAUNCH_SWARM_LAB", &self.dir)
            .env("DOCKER_CONFIG", self.dir.join("dockercfg"));
        command
    }

    fn run(&self, name: &str, args: &[&str]) {
        let out = self
            .script(name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run tests/cluster/{name}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        assert!(
            out.status.success(),
            "tests/cluster/{name} {args:?} failed ({}): {stderr}",
            out.status
        );
    }

    /// Puts the host's `cclaunch-test/NAME:latest` images on the manager
    /// (tests/cluster/images.sh: only those asked for, cached between runs).
    pub fn images(&self, names: &[&str]) {
        self.run("images.sh", names);
    }

    /// SIGKILLs node `name`'s dockerd, as a crashed machine: its containers
    /// keep running.
    pub fn kill_node(&self, name: &str) {
        self.run("node.sh", &["kill", name]);
    }

    /// Starts node `name`'s dockerd again (same roots, same swarm identity);
    /// returns once its API answers.
    pub fn start_node(&self, name: &str) {
        self.run("node.sh", &["start", name]);
    }

    /// Runs `f` on a thread of its own that entered the hub's network
    /// namespace: every socket `f` makes (listening or connecting) lives
    /// there and keeps working when handed to other threads.
    pub fn in_hub<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        super::in_netns(&self.hub_netns, f)
    }

    /// A listener on the hub's address (port 0: any free port), reachable
    /// from every node, e.g. from a worker's task with `--network host`.
    pub fn hub_listener(&self, port: u16) -> TcpListener {
        let addr = (self.hub_addr, port);
        self.in_hub(move || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("listen on {}:{port} in the hub: {e}", addr.0))
    }

    /// `program` run in the hub's network namespace (tests/cluster/in-hub.sh):
    /// a server process listening on the hub's address.
    pub fn hub_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = self.script("in-hub.sh");
        command.arg(program);
        command
    }

    /// The docker CLI against endpoint `host` (cleanup in Drop, diagnostics).
    /// What carries `label=value` on the manager: services, secrets,
    /// configs, as `"<kind> <id>"`.
    pub fn leftovers(&self, label: &str, value: &str) -> Vec<String> {
        let filter = format!("label={label}={value}");
        let mut left = Vec::new();
        for kind in ["service", "secret", "config"] {
            let out = self.docker(&self.manager, &[kind, "ls", "-q", "--filter", &filter]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                left.push(format!("{kind} {id}"));
            }
        }
        left
    }

    /// What cclaunch left of `peer` on the manager.
    pub fn peer_leftovers(&self, peer: &str) -> Vec<String> {
        self.leftovers("org.cclaunch.peer-id", peer)
    }

    pub fn docker(&self, host: &str, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_CONFIG", self.dir.join("dockercfg"))
            .args(["-H", host])
            .args(args)
            .output()
            .expect("run docker")
    }
}

/// One test's id in a lab, and the guard that removes whatever carries
/// `label=id` on the manager when the test ends: services first (a secret
/// or config in use cannot be removed), then secrets and configs; with the
/// CLI, so it also works while the test panics.
pub struct Scope {
    pub lab: Lab,
    pub id: String,
    label: &'static str,
}

impl Scope {
    pub fn new(lab: &Lab, test: &str, label: &'static str) -> Scope {
        Scope {
            lab: lab.clone(),
            id: super::unique_peer(test).to_lowercase(),
            label,
        }
    }

    /// What is left of this scope on the manager: services, secrets, configs.
    pub fn leftovers(&self) -> Vec<String> {
        self.lab.leftovers(self.label, &self.id)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        for _ in 0..2 {
            for item in self.leftovers() {
                if let Some((kind, id)) = item.split_once(' ') {
                    self.lab.docker(&self.lab.manager, &[kind, "rm", id]);
                }
            }
        }
    }
}

/// `cclaunch ARGS` as `peer` with `engine.kind: swarm`: builds on
/// `build_engine`, services on the swarm at `manager` (empty: the build
/// engine), images pushed to `registry`, chaincode on workers only, the shell
/// runtime for node packages. (exit code, stdout, stderr), within `limit`.
pub async fn cclaunch(
    build_engine: &str,
    manager: &str,
    registry: &str,
    peer: &str,
    args: &[&str],
    limit: std::time::Duration,
) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(args)
        .env("CORE_VM_ENDPOINT", build_engine)
        .env("CORE_PEER_ID", peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", super::SHENV)
        .env("CCLAUNCH_STATEDIR", super::state_dir(peer))
        .env("CCLAUNCH_ENGINE_KIND", "swarm")
        .env("CCLAUNCH_SWARM_ENDPOINT", manager)
        .env("CCLAUNCH_REGISTRY_ADDRESS", registry)
        .env("CCLAUNCH_SWARM_CONSTRAINTS", "node.role==worker")
        .env("RUST_LOG", "off")
        .env_remove(cclaunch::client::SERVER_ENV)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, out)
        .await
        .unwrap_or_else(|_| panic!("cclaunch {args:?} did not finish in {limit:?}"))
        .expect("run cclaunch");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}
