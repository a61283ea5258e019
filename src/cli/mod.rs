//! The admin and harness CLI: clap definitions. Handlers live in `commands`.

mod commands;
mod progress;
mod road;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use commands::run;

const ABOUT: &str =
    "Chaincode launcher for Hyperledger Fabric: builds chaincode packages into images \
and runs them exactly as a peer's Docker controller would (same names, args, env and TLS files).";

const AFTER_HELP: &str = "\
Typical flow:
  cclaunch package --type node --label mycc_1 ./chaincode -o mycc.tar.gz
  cclaunch build mycc.tar.gz                     # image named as a peer names it; reused if present
  cclaunch start mycc.tar.gz --peer-address 127.0.0.1:7052
  cclaunch logs -f mycc.tar.gz                   # or the package id instead of the file
  cclaunch stop mycc.tar.gz

Configuration uses Fabric's core.yaml keys (vm.endpoint, vm.docker.hostConfig, chaincode.builder,
chaincode.{golang,node,java}.runtime, chaincode.logging.*, peer.id, peer.networkId,
peer.localMspId) from --config, overridden by CORE_* environment variables as a peer reads them
(CORE_PEER_ID, CORE_CHAINCODE_BUILDER, ...). `cclaunch config` shows the effective values.
Log filtering: RUST_LOG, e.g. RUST_LOG=info,peer.chaincode=warn

Through a running sidecar (`cclaunch serve`) instead of the engine: build, start, stop, wait,
logs, ps, gc, health and try take --server ADDR (or CCLAUNCH_SERVER), and print the same:
  cclaunch ps --server unix:/run/cclaunch/cclaunch.sock
  cclaunch start mycc.tar.gz --peer-address peer0:7052 --server https://sidecar:7443 \
      --server-ca ca.crt --server-cert client.crt --server-key client.key
Package files are streamed to the sidecar, which need not share this machine's disk.";

#[derive(Debug, Parser)]
#[command(name = "cclaunch", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// YAML config file with core.yaml key names.
    #[arg(long, global = true, env = "CCLAUNCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a chaincode package and print its package id (label:sha256).
    ///
    /// Refuses hostile archives (absolute or `..` paths, links, devices,
    /// duplicates, non-UTF-8 names, archive bombs) at both tar layers.
    PackageId {
        /// The package file (.tar.gz, as `peer lifecycle chaincode package` writes).
        file: PathBuf,
    },
    /// Make a chaincode package from a source directory, laid out as the peer CLI does.
    ///
    /// The directory's files go under src/ in code.tar.gz. Prints the package id.
    Package(PackageArgs),
    /// Print the container and image names a peer gives a chaincode id (with
    /// cclaunch.engine.kind swarm, also the service name it runs under; with
    /// kubernetes, the Pod name).
    Names(NamesArgs),
    /// Print the Dockerfile cclaunch (and a peer) would build for a package.
    Dockerfile {
        /// The package file.
        package: PathBuf,
    },
    /// Build a package into its chaincode image, or reuse the image if it exists.
    Build {
        /// The package file.
        package: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a chaincode container (building it first when given a package file).
    ///
    /// With -f, exits with the chaincode's exit code. A failure of cclaunch's
    /// own exits 125, as `docker run` does, so it is never taken for the
    /// chaincode's; a usage error exits 2.
    Start(StartArgs),
    /// Stop and remove a chaincode container started by cclaunch (or one
    /// prepared ahead of its start).
    Stop {
        /// Package id, or the package file.
        chaincode: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Block until a chaincode container exits and print its exit code.
    Wait {
        /// Package id, or the package file.
        chaincode: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a chaincode container's output: as written into a pipe or file;
    /// on a terminal, control characters escaped (\r, \x1b...) but colours kept.
    Logs(LogsArgs),
    /// List the chaincode containers cclaunch manages.
    Ps {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove this peer's chaincode containers and images that cclaunch made.
    ///
    /// Give package ids (or package files) to remove just those, or --keep to
    /// remove everything else. Nothing without cclaunch's labels is touched.
    Gc(GcArgs),
    /// Try a package end to end against a stand-in peer (devpeer), no Fabric network needed.
    ///
    /// Starts devpeer on loopback, builds and starts the package pointed at it
    /// (with fresh mutual-TLS material with --tls), waits until the chaincode
    /// registers, runs each --invoke in order and prints the responses, then
    /// stops the chaincode. Exits non-zero if any step failed. A chaincode that
    /// dies before registering is reported with its exit code and last output.
    Try(TryArgs),
    /// A stand-in peer (ChaincodeSupport server) for harnesses.
    #[command(subcommand)]
    Devpeer(DevpeerCommand),
    /// Run as the sidecar: serve the cclaunch.v1.Launcher gRPC API (see docs/API.md).
    ///
    /// Listens on a Unix socket (mode 0660; a stale socket is replaced, a live
    /// one refused) and/or TCP. TCP with --tls-cert, --tls-key and
    /// --tls-client-ca is mutual TLS: every client must present a certificate
    /// signed by the client CA, and any address may be used. Plain TCP needs
    /// --insecure-plain-tcp: chaincode shares the host's network, so it could
    /// drive the engine through it, loopback included. Also serves
    /// grpc.health.v1 and gRPC reflection. One `serve` per peer: it holds a
    /// lock in cclaunch.stateDir (a second one is refused), and at start
    /// removes what a killed predecessor left half-done. SIGTERM writes the
    /// output mirrors' checkpoints, stops accepting on every listener, ends
    /// following Logs and Wait at once (UNAVAILABLE; `builder run` waits for
    /// the next sidecar) and lets other calls finish (for up to 10 s);
    /// chaincode keeps running, and the next `serve` resumes it. Connections
    /// are bounded (cclaunch.api.*: count, calls each, header and idle timeouts).
    /// With cclaunch.prepare, after a build and after each stop it creates
    /// the chaincode's next container ahead of time, without the TLS files
    /// (`ps` state `prepared`), so the next start only puts them in and
    /// starts it.
    ///
    /// Uploads, builds, Logs streams and the output mirror are bounded
    /// (cclaunch.package.*, cclaunch.build.timeout, cclaunch.output.*; see
    /// docs/SECURITY.md). Uploads are spooled in cclaunch.stateDir.
    ///
    /// Clients: `cclaunch ps --server https://HOST:PORT --server-ca ca.crt
    /// --server-cert client.crt --server-key client.key` (any verb that takes
    /// --server), or grpcurl -cacert/-cert/-key.
    Serve(ServeArgs),
    /// Fabric's external builder entry points, for a peer to run (docs/BUILDER.md).
    ///
    /// `install DIR` writes DIR/bin/{detect,build,release,run} and prints the
    /// core.yaml lines naming them; the peer then builds and runs chaincode
    /// through the sidecar whose address is in CCLAUNCH_SERVER.
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Check that the container engine answers; print its version.
    Health {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the effective configuration (defaults, file, environment).
    Config,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Chaincode type: golang, node or java.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// Package label (letters, digits and _.+- ; must start alphanumeric).
    #[arg(long)]
    pub label: String,
    /// metadata.json path: the Go import path for golang, empty otherwise.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Source directory (for Go, the module root).
    pub dir: PathBuf,
    /// Output file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Chaincode id (a package id, label:hash).
    pub ccid: String,
    /// Network id (default: peer.networkId from config).
    #[arg(long)]
    pub network_id: Option<String>,
    /// Peer id (default: peer.id from config).
    #[arg(long)]
    pub peer_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Package id of a built image, or a package file (built first if needed).
    pub chaincode: String,
    /// Address the chaincode dials back (host:port of the peer's chaincode listener).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_address: String,
    /// Client TLS certificate (PEM). With --client-key and --root-cert turns TLS on.
    #[arg(long, value_name = "FILE", requires_all = ["client_key", "root_cert"])]
    pub client_cert: Option<PathBuf>,
    /// Client TLS private key (PEM). Uploaded into the container, never logged.
    #[arg(long, value_name = "FILE", requires_all = ["client_cert", "root_cert"])]
    pub client_key: Option<PathBuf>,
    /// The peer's TLS root certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["client_cert", "client_key"])]
    pub root_cert: Option<PathBuf>,
    /// MSP id handed to the chaincode (default: peer.localMspId).
    #[arg(long)]
    pub msp_id: Option<String>,
    /// Stay and mirror the output until the container exits, then exit with its code.
    ///
    /// The output goes to stdout line by line, on either road (through --server it is
    /// streamed from the sidecar, and followed again if the sidecar restarts).
    /// SIGINT or SIGTERM ends the following (exit 130 or 143); the chaincode
    /// keeps running.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["chaincode", "keep", "all", "caches"]))]
pub struct GcArgs {
    /// Package ids (or package files) to remove.
    pub chaincode: Vec<String>,
    /// Remove everything except these package ids (repeatable).
    #[arg(long, value_name = "PACKAGE_ID")]
    pub keep: Vec<String>,
    /// Remove everything of this peer's that cclaunch made.
    #[arg(long, conflicts_with_all = ["chaincode", "keep"])]
    pub all: bool,
    /// Remove this peer's build caches instead (Go's and npm's, a volume per
    /// chaincode package path; the next build fills them again).
    #[arg(long, conflicts_with_all = ["chaincode", "keep", "all"])]
    pub caches: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TryArgs {
    /// The package file.
    pub package: PathBuf,
    /// Mutual TLS between the chaincode and devpeer.
    #[arg(long)]
    pub tls: bool,
    /// A transaction as a JSON array of strings, e.g. '["CreateAsset","a1","blue"]' (repeatable, in order).
    #[arg(long, value_name = "JSON")]
    pub invoke: Vec<String>,
    /// Send this one as INIT first (JSON array of strings).
    #[arg(long, value_name = "JSON")]
    pub init: Option<String>,
    /// Channel the transactions are sent on.
    #[arg(long, default_value = "mychannel")]
    pub channel: String,
    /// MSP id of the chaincode and of the transaction creator (default: peer.localMspId).
    #[arg(long)]
    pub msp_id: Option<String>,
    /// How long the chaincode may take to register (default: chaincode.startuptimeout).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Leave the chaincode running at the end.
    #[arg(long)]
    pub keep: bool,
    /// Where devpeer listens, and so the peer address the chaincode is given.
    /// Chaincode on this machine reaches loopback; chaincode on a swarm's
    /// workers needs an address of this machine they reach, e.g.
    /// --listen 10.0.0.5:0 (port 0: any free port).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// The chaincode is built and run by the sidecar at --server (devpeer
    /// still listens in this process, at --listen: the chaincode must reach it).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How a verb reaches a running sidecar instead of the engine.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Through a sidecar")]
pub struct ServerArgs {
    /// Go through the sidecar (`cclaunch serve`) at ADDR instead of the engine:
    /// unix:/path/cclaunch.sock, https://HOST:PORT (mutual TLS), or http://HOST:PORT (a
    /// sidecar serving --insecure-plain-tcp).
    #[arg(long, value_name = "ADDR", env = crate::client::SERVER_ENV)]
    pub server: Option<String>,
    /// With an https --server: the CA the sidecar's certificate must chain to (PEM).
    #[arg(long, value_name = "FILE", env = "CCLAUNCH_SERVER_CA")]
    pub server_ca: Option<PathBuf>,
    /// With an https --server: this client's certificate (PEM), signed by the sidecar's client CA.
    #[arg(long, value_name = "FILE", env = "CCLAUNCH_SERVER_CERT")]
    pub server_cert: Option<PathBuf>,
    /// With an https --server: this client's private key (PEM). Never logged.
    #[arg(
        long,
        value_name = "FILE",
        env = "CCLAUNCH_SERVER_KEY",
        hide_env_values = true
    )]
    pub server_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket path (default, when no --tcp: $XDG_RUNTIME_DIR/cclaunch.sock, else
    /// /run/cclaunch/cclaunch.sock). Given with --tcp, both listen.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// TCP address: mutual TLS with --tls-cert/--tls-key/--tls-client-ca; plain TCP only
    /// with --insecure-plain-tcp.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<std::net::SocketAddr>,
    /// The server's TLS certificate (PEM, chain allowed) for --tcp; its SANs must name the
    /// address clients dial.
    #[arg(long, value_name = "FILE", requires_all = ["tcp", "tls_key", "tls_client_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The server's TLS private key (PEM). Read once, never logged.
    #[arg(long, value_name = "FILE", requires_all = ["tcp", "tls_cert", "tls_client_ca"])]
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that clients' certificates must chain to. A client
    /// certificate is required: clients without one, or from another CA, are refused.
    #[arg(long, value_name = "FILE", requires_all = ["tcp", "tls_cert", "tls_key"])]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve --tcp as plain TCP, without TLS. Unsafe on any address, loopback included:
    /// chaincode runs on the host's network, and anything that reaches the port drives
    /// the engine (lists and stops chaincode, builds and starts containers).
    #[arg(long, requires = "tcp", conflicts_with = "tls_cert")]
    pub insecure_plain_tcp: bool,
    /// Operations endpoint (HTTP GET /healthz and /metrics), e.g. 127.0.0.1:9444. Read-only and
    /// safe for chaincode to reach: nothing secret, engine asked at most once a second.
    #[arg(long, value_name = "HOST:PORT")]
    pub operations: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum DevpeerCommand {
    /// Serve until interrupted, so chaincode started separately can register.
    ///
    /// With --tls it makes a CA and writes ca.crt, client.crt and client.key
    /// to --tls-dir: start chaincode with `cclaunch start ... --client-cert
    /// DIR/client.crt --client-key DIR/client.key --root-cert DIR/ca.crt`.
    /// The control endpoint answers `GET /chaincodes` (who registered) and
    /// `POST /invoke` ({"chaincode","args":[...],"channel"?,"init"?}).
    Serve(DevpeerServeArgs),
}

#[derive(Debug, Args)]
pub struct DevpeerServeArgs {
    /// Address chaincode dials (the --peer-address to give `start`).
    #[arg(long, default_value = "127.0.0.1:7052")]
    pub listen: std::net::SocketAddr,
    /// HTTP control endpoint (loopback).
    #[arg(long, default_value = "127.0.0.1:7053")]
    pub control: std::net::SocketAddr,
    /// Require mutual TLS from chaincode.
    #[arg(long, requires = "tls_dir")]
    pub tls: bool,
    /// Where to write ca.crt, client.crt and client.key (with --tls).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// MSP id of the transaction creator (default: peer.localMspId).
    #[arg(long)]
    pub msp_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Package id, or the package file.
    pub chaincode: String,
    /// Keep following new output, until the container exits, or SIGINT or
    /// SIGTERM (exit 130 or 143).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line).
    #[arg(long, value_name = "N", default_value = "all")]
    pub tail: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Exit 0 if META/metadata.json's type is one of cclaunch.builder.types, else 1 (why on stderr).
    Detect {
        /// The peer's extracted chaincode source.
        src: PathBuf,
        /// The directory holding metadata.json.
        meta: PathBuf,
    },
    /// Build the package through the sidecar (ccaas: check and keep connection.json) into BLD.
    ///
    /// The package is made again from SRC and META/metadata.json (links and
    /// special files in SRC are refused) and streamed to the sidecar; its build
    /// output goes to stderr. BLD/cclaunch.json records the image.
    Build {
        src: PathBuf,
        meta: PathBuf,
        /// Build output directory (kept by the peer).
        bld: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write what the peer reads: statedb indexes, and for ccaas chaincode/server/connection.json.
    Release {
        bld: PathBuf,
        /// Release output directory.
        release: PathBuf,
    },
    /// Start the chaincode through the sidecar as RUNDIR/chaincode.json says; live as long as it does.
    ///
    /// Mirrors its output to stderr and exits with its exit code. On SIGTERM
    /// or SIGINT, stops it through the sidecar and exits 143 or 130. A failure
    /// of cclaunch's own (no sidecar, a refused start) exits 125.
    Run {
        bld: PathBuf,
        /// Holds the peer's chaincode.json.
        rundir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write DIR/bin/{detect,build,release,run} exec'ing this binary; print the core.yaml snippet.
    ///
    /// --server and the global --config (or CCLAUNCH_CONFIG) are written into
    /// the scripts as defaults, used when the peer does not pass those
    /// variables on.
    Install(BuilderInstallArgs),
}

#[derive(Debug, Args)]
pub struct BuilderInstallArgs {
    /// Where the builder goes (the `path` of its core.yaml entry).
    pub dir: PathBuf,
    /// The sidecar (and, for https, the client's PEM files) to use when the
    /// peer does not pass CCLAUNCH_SERVER (and CCLAUNCH_SERVER_CA, _CERT, _KEY) on.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The builder's `name` in core.yaml.
    #[arg(long, default_value = "cclaunch")]
    pub name: String,
}
