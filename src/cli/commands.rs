//! CLI handlers: each turns arguments into one call of the [`Launch`]
//! interface (on the engine, or in a sidecar with `--server`: see
//! [`road::launch`]) and prints the outcome, the same on either road.
//! Errors get their prose here, at the edge.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::progress::BuildProgress;
use super::road::{self, launcher};
use super::{
    BuilderCommand, Cli, Command, DevpeerCommand, DevpeerServeArgs, GcArgs, LogsArgs, NamesArgs,
    PackageArgs, ServeArgs, ServerArgs, StartArgs, TryArgs,
};
use crate::config::{self, Config};
use crate::launch::{self, Built, Launch, Line, LogQuery, Selection, StartRequest, TlsMaterial};
use crate::naming::Scope;
use crate::package::{self, Limits, Metadata, Package};
use crate::platform::Platform;
use crate::printable::{self, Sgr};
use crate::signals::Signals;

/// What `start` and `builder run` exit with when cclaunch itself fails, as
/// `docker run` does: any other code they exit with is the chaincode's own.
pub const OWN_FAILURE: i32 = 125;

/// Runs one command; the process exit code. A failure is said on stderr,
/// the whole cause chain on one line, each cause once.
pub async fn run(cli: Cli) -> i32 {
    let failed = cli.own_failure();
    match run_command(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::error_chain(e.as_ref()));
            failed
        }
    }
}

impl Cli {
    /// The exit code of cclaunch's own failure: [`OWN_FAILURE`] for a verb
    /// that passes a chaincode's exit code on, else 1. (Usage errors exit
    /// 2, before any verb runs.)
    pub fn own_failure(&self) -> i32 {
        match self.command {
            Command::Start(_) | Command::Builder(BuilderCommand::Run { .. }) => OWN_FAILURE,
            _ => 1,
        }
    }
}

async fn run_command(cli: Cli) -> Result<i32> {
    let config_file = cli.config.as_deref();
    let config = Config::load(config_file)?;
    match cli.command {
        Command::PackageId { file } => {
            let package = open_package(&file, &config)?;
            println!("{}", package.id);
        }
        Command::Package(args) => make_package(args)?,
        Command::Names(args) => names(args, &config)?,
        Command::Dockerfile { package } => {
            let package = open_package(&package, &config)?;
            let platform = Platform::from_type(&package.metadata.kind)
                .with_context(|| format!("chaincode {}", package.id))?;
            println!("{}", platform.dockerfile(&config));
        }
        Command::Build { package, server } => {
            let launch = road::launch(&server, &config).await?;
            let package = open_package(&package, &config)?;
            build(&*launch, &package).await?;
        }
        Command::Start(args) => return start(args, config).await,
        Command::Stop { chaincode, server } => {
            let launch = road::launch(&server, &config).await?;
            launch.exclusive()?;
            let id = package_id(&chaincode, &config)?;
            println!("stopped {}", launch.stop(&id).await?);
        }
        Command::Wait { chaincode, server } => {
            let launch = road::launch(&server, &config).await?;
            let id = package_id(&chaincode, &config)?;
            println!("{}", launch.wait(&id).await?);
        }
        Command::Logs(args) => return logs(args, config).await,
        Command::Ps { server } => ps(&server, config).await?,
        Command::Gc(args) => gc(args, config).await?,
        Command::Try(args) => return try_package(args, config).await,
        Command::Serve(args) => serve(args, config).await?,
        Command::Devpeer(DevpeerCommand::Serve(args)) => devpeer_serve(args, config).await?,
        Command::Builder(command) => return builder(command, &config, config_file).await,
        Command::Health { server } => {
            let health = road::launch(&server, &config).await?.health().await?;
            println!(
                "engine {}: ok ({} {}, API {})",
                health.reached, health.engine, health.version, health.api_version
            );
        }
        Command::Config => print!("{}", config::effective_yaml(config_file)?),
    }
    Ok(0)
}

/// The external builder's verbs; each returns the exit code for the peer.
async fn builder(
    command: BuilderCommand,
    config: &Config,
    config_file: Option<&Path>,
) -> Result<i32> {
    use crate::builder;
    match command {
        BuilderCommand::Detect { src, meta } => Ok(builder::detect(config, &src, &meta)),
        BuilderCommand::Build {
            src,
            meta,
            bld,
            server,
        } => builder::build(config, &server.target()?, &src, &meta, &bld).await,
        BuilderCommand::Release { bld, release } => builder::release(&bld, &release),
        BuilderCommand::Run {
            bld,
            rundir,
            server,
        } => builder::run(&server.target()?, &bld, &rundir).await,
        BuilderCommand::Install(args) => {
            builder::install(&builder::Install {
                dir: args.dir,
                name: args.name,
                server: args.server.server.clone(),
                config: config_file.map(Path::to_path_buf),
                server_files: [
                    ("CCLAUNCH_SERVER_CA", &args.server.server_ca),
                    ("CCLAUNCH_SERVER_CERT", &args.server.server_cert),
                    ("CCLAUNCH_SERVER_KEY", &args.server.server_key),
                ]
                .into_iter()
                .filter_map(|(name, file)| Some((name, file.clone()?)))
                .collect(),
            })?;
            Ok(0)
        }
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_unpacked_bytes: config.cclaunch.package.max_unpacked_bytes,
    }
}

fn open_package(file: &Path, config: &Config) -> Result<Package> {
    Ok(Package::open(file, limits(config))?)
}

/// A package id as given, or the id of the package file at that path.
fn package_id(arg: &str, config: &Config) -> Result<String> {
    let path = Path::new(arg);
    if path.is_file() {
        return Ok(open_package(path, config)?.id);
    }
    crate::ccid::check(arg).with_context(|| {
        format!(
            "{} is neither a package file nor a package id",
            crate::excerpt::quote(arg)
        )
    })?;
    Ok(arg.to_string())
}

fn make_package(args: PackageArgs) -> Result<()> {
    Platform::from_type(&args.kind)?;
    if !args.dir.is_dir() {
        anyhow::bail!("source directory {} does not exist", args.dir.display());
    }
    let metadata = Metadata {
        path: args.path,
        kind: args.kind,
        label: args.label,
    };
    let id = package::write(&metadata, &args.dir, &args.output)
        .with_context(|| format!("cannot write package {}", args.output.display()))?;
    println!("{id}");
    Ok(())
}

fn names(args: NamesArgs, config: &Config) -> Result<()> {
    let scope = Scope::new(
        args.network_id
            .unwrap_or_else(|| config.peer.network_id.clone()),
        args.peer_id.unwrap_or_else(|| config.peer.id.clone()),
    );
    let names = scope.names(&args.ccid)?;
    println!("container: {}", names.container);
    println!("image: {}", names.image);
    if config.cclaunch.engine.kind == crate::config::EngineKind::Swarm {
        // A service name is a DNS label; Fabric's name stays in a label.
        println!(
            "service: {}",
            crate::runtime::swarm::names::service_name(&names.container)
        );
    }
    if config.cclaunch.engine.kind == crate::config::EngineKind::Kubernetes {
        // A Pod name is a DNS label; Fabric's name stays in an annotation.
        println!(
            "pod: {}",
            crate::runtime::kubernetes::names::pod_name(&names.container)
        );
    }
    Ok(())
}

async fn build(launch: &dyn Launch, package: &Package) -> Result<Built> {
    let progress = BuildProgress::new(&format!("build {}", package.id));
    let built = launch.build(package, &progress).await?;
    progress.finish(if built.reused {
        "image exists, reused"
    } else {
        "built"
    });
    println!(
        "image: {}{}",
        built.image,
        if built.reused { " (reused)" } else { "" }
    );
    Ok(built)
}

async fn start(args: StartArgs, config: Config) -> Result<i32> {
    let launch = road::launch(&args.server, &config).await?;
    launch.exclusive()?;
    let path = Path::new(&args.chaincode);
    let (package_id, platform) = if path.is_file() {
        let package = open_package(path, &config)?;
        let built = build(&*launch, &package).await?;
        (package.id, Some(built.platform))
    } else {
        (package_id(&args.chaincode, &config)?, None)
    };
    let tls = match (&args.client_cert, &args.client_key, &args.root_cert) {
        (Some(cert), Some(key), Some(root)) => Some(TlsMaterial {
            client_cert: read(cert)?,
            client_key: read(key)?,
            root_cert: read(root)?,
        }),
        _ => None,
    };
    let started = launch
        .start(StartRequest {
            package_id: package_id.clone(),
            platform,
            peer_address: args.peer_address,
            tls,
            msp_id: args.msp_id,
            extra_env: Vec::new(),
            image_of: None,
        })
        .await?;
    println!("started {} ({})", started.container, started.platform);
    if !args.follow {
        return Ok(0);
    }
    until_signal(async {
        let code = launch::follow(&*launch, &package_id, &Printer).await?;
        eprintln!("chaincode {package_id} exited with code {code}");
        Ok(i32::try_from(code).unwrap_or(1))
    })
    .await
}

/// `start -f`: the chaincode's output to stdout, line by line.
struct Printer;

impl launch::Follower for Printer {
    fn line(&self, line: &Line) {
        print_line(&line.text);
    }

    fn lost(&self, error: &launch::Error) {
        eprintln!(
            "warning: {}; the chaincode keeps running: following it again once this is back",
            crate::error_chain(error)
        );
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A chaincode output line to stdout: on a terminal with its control
/// characters made visible (colours kept), else as the chaincode wrote it.
fn print_line(line: &str) {
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *TERMINAL.get_or_init(|| std::io::IsTerminal::is_terminal(&std::io::stdout())) {
        println!("{}", printable::render(line, Sgr::Keep));
    } else {
        println!("{line}");
    }
}

async fn logs(args: LogsArgs, config: Config) -> Result<i32> {
    use futures_util::StreamExt;
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<u64>()
                .map_err(|_| anyhow::anyhow!("--tail {n:?}: give a line count or \"all\""))?,
        ),
    };
    let launch = road::launch(&args.server, &config).await?;
    let id = package_id(&args.chaincode, &config)?;
    let query = LogQuery {
        follow: args.follow,
        tail,
        since: 0,
    };
    let printed = async {
        let mut lines = launch.logs(&id, query).await?;
        while let Some(line) = lines.next().await {
            print_line(&line?.text);
        }
        Ok(0)
    };
    until_signal(printed).await
}

/// `work`'s outcome, or the exit code of SIGINT or SIGTERM if one comes
/// first (`work` is dropped, ending its streams). Handled rather than left to
/// the default: a harness that starts a follower in the background of a
/// script gives it SIGINT ignored, and Ctrl-C or `kill -INT` would not end it.
async fn until_signal(work: impl std::future::Future<Output = Result<i32>>) -> Result<i32> {
    let mut signals = Signals::new().context("cannot handle SIGTERM and SIGINT")?;
    tokio::select! {
        done = work => done,
        signal = signals.recv() => Ok(crate::signals::exit_code(signal)),
    }
}

async fn ps(server: &ServerArgs, config: Config) -> Result<()> {
    let rows = road::launch(server, &config).await?.list().await?;
    println!(
        "{:<48} {:<10} {:<6} PACKAGE ID",
        "CONTAINER", "STATE", "EXIT"
    );
    for row in rows {
        let exit = row
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<48} {:<10} {:<6} {}",
            row.container, row.state, exit, row.package_id
        );
    }
    Ok(())
}

async fn gc(args: GcArgs, config: Config) -> Result<()> {
    let launch = road::launch(&args.server, &config).await?;
    launch.exclusive()?;
    let selection = if args.caches {
        Selection::Caches
    } else if args.chaincode.is_empty() {
        Selection::AllBut(args.keep)
    } else {
        let ids = args
            .chaincode
            .iter()
            .map(|c| package_id(c, &config))
            .collect::<Result<Vec<_>>>()?;
        Selection::Only(ids)
    };
    let collected = launch.gc(&selection).await?;
    for container in &collected.containers {
        println!("removed container {container}");
    }
    for image in &collected.images {
        println!("removed image {image}");
    }
    for volume in &collected.volumes {
        println!("removed build cache {volume}");
    }
    if collected.containers.is_empty()
        && collected.images.is_empty()
        && collected.volumes.is_empty()
    {
        println!("nothing to remove");
    }
    Ok(())
}

fn json_args(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).with_context(|| {
        format!("{text:?} is not a JSON array of strings, e.g. '[\"CreateAsset\",\"a1\"]'")
    })
}

async fn try_package(args: TryArgs, config: Config) -> Result<i32> {
    use crate::devpeer::tryout::{self, Invocation, Options};
    let startup_timeout = match &args.timeout {
        Some(text) => config::parse_duration(text)
            .with_context(|| format!("--timeout {text:?}: use a duration such as 300s"))?,
        None => config.startup_timeout()?,
    };
    if args.listen.ip().is_unspecified() {
        anyhow::bail!(
            "--listen {}: the chaincode is given this address to dial; use one of this machine's addresses that it reaches (127.0.0.1 for chaincode on this machine)",
            args.listen
        );
    }
    let mut invocations = Vec::new();
    if let Some(init) = &args.init {
        invocations.push(Invocation {
            args: json_args(init)?,
            init: true,
        });
    }
    for invoke in &args.invoke {
        invocations.push(Invocation {
            args: json_args(invoke)?,
            init: false,
        });
    }
    let options = Options {
        tls: args.tls,
        channel: args.channel,
        msp_id: args
            .msp_id
            .unwrap_or_else(|| config.peer.local_msp_id.clone()),
        startup_timeout,
        invoke_timeout: std::time::Duration::from_secs(30),
        invocations,
        keep: args.keep,
        listen: args.listen,
    };
    let launch = road::launch(&args.server, &config).await?;
    launch.exclusive()?;
    let package = open_package(&args.package, &config)?;
    let progress = BuildProgress::new(&format!("build {}", package.id));
    let outcome = tryout::run(&*launch, &package, &options, &progress).await?;
    progress.finish("ready");
    println!(
        "registered {} with devpeer at {} in {:.1} s (container start {:.2} s){}",
        outcome.package_id,
        outcome.peer_address,
        outcome.registered_after.as_secs_f64(),
        outcome.start_took.as_secs_f64(),
        if options.tls { ", mutual TLS" } else { "" }
    );
    for (invocation, response) in &outcome.responses {
        let call = serde_json::to_string(&invocation.args).unwrap_or_default();
        match response {
            Ok(r) => println!(
                "{} {call} -> status {} message {:?} payload {:?}",
                if invocation.init { "init" } else { "invoke" },
                r.status,
                r.message,
                String::from_utf8_lossy(&r.payload)
            ),
            Err(e) => println!("invoke {call} -> error: {e}"),
        }
    }
    Ok(if outcome.all_ok() { 0 } else { 1 })
}

async fn devpeer_serve(args: DevpeerServeArgs, config: Config) -> Result<()> {
    use crate::devpeer::{ca::DevCa, control, Creator, DevPeer, TlsSetup};
    let msp_id = args
        .msp_id
        .unwrap_or_else(|| config.peer.local_msp_id.clone());
    let ca = DevCa::new()?;
    let admin = ca.client(&format!("Admin@{msp_id}"))?;
    let peer = DevPeer::new(Creator {
        msp_id,
        cert_pem: admin.client_cert,
    });
    let tls = match (&args.tls, &args.tls_dir) {
        (true, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let client = ca.client("chaincode")?;
            write_file(&dir.join("ca.crt"), ca.ca_pem().as_bytes(), 0o644)?;
            write_file(&dir.join("client.crt"), &client.client_cert, 0o644)?;
            write_file(&dir.join("client.key"), &client.client_key, 0o600)?;
            let server = ca.server(&[])?;
            Some(TlsSetup {
                cert_pem: server.cert_pem,
                key_pem: server.key_pem,
                client_ca_pem: ca.ca_pem(),
            })
        }
        _ => None,
    };
    let with_tls = tls.is_some();
    let listening = peer.listen(args.listen, tls).await?;
    let (control_addr, control_task) = control::serve(peer.clone(), args.control).await?;
    println!(
        "devpeer: chaincode address {}{}; control http://{control_addr} (GET /chaincodes, POST /invoke)",
        listening.addr,
        if with_tls { " (mutual TLS)" } else { "" }
    );
    crate::signals::shutdown().await;
    control_task.abort();
    listening.shutdown().await;
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn serve(args: ServeArgs, config: Config) -> Result<()> {
    // Handled from here: SIGTERM during start-up (the leftovers' clean-up
    // and the resume, slow on a slow engine) ends the sidecar cleanly once
    // it serves, not by the signal's default.
    let shutdown = crate::signals::shutdown();
    use crate::api::{self, Listen, ServerTls};
    let mut listeners = Vec::new();
    if let Some(addr) = args.tcp {
        let tls = match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(ServerTls::from_files(cert, key, ca)?),
            _ => None,
        };
        listeners.push(Listen::Tcp {
            addr,
            insecure_plain: args.insecure_plain_tcp,
            tls,
        });
    }
    let socket = match (args.socket, args.tcp) {
        (Some(path), _) => Some(path),
        (None, Some(_)) => None,
        (None, None) => Some(match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) => Path::new(&dir).join("cclaunch.sock"),
            None => "/run/cclaunch/cclaunch.sock".into(),
        }),
    };
    if let Some(path) = socket {
        listeners.insert(0, Listen::Unix(path));
    }
    // One engine connection per mirrored chaincode: room for many.
    match crate::nofile::raise() {
        Ok(limit) => tracing::debug!(?limit, "open-file limit"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit; a sidecar with many chaincodes may run out of file descriptors")
        }
    }
    let launcher = Arc::new(launcher(config).await?);
    // Before anything listens: a second sidecar of this peer stops here.
    launcher.claim()?;
    let operations = match args.operations {
        Some(addr) => {
            let (bound, task) = api::operations::serve(launcher.clone(), addr)
                .await
                .with_context(|| format!("cannot serve the operations endpoint on {addr}"))?;
            println!("operations endpoint on http://{bound} (/healthz, /metrics)");
            Some(task)
        }
        None => None,
    };
    let names: Vec<String> = listeners.iter().map(|l| l.to_string()).collect();
    println!("cclaunch serving on {}", names.join(" and "));
    api::serve(launcher, listeners, shutdown).await?;
    if let Some(task) = operations {
        task.abort();
    }
    Ok(())
}
