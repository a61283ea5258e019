//! The external builder as a peer drives it, for the tests of every engine:
//! the directories a peer hands its builder (SRC laid out as Fabric's untar
//! does it), `cclaunch builder install`, `DIR/bin/VERB` with the peer's
//! pruned environment, and a running `bin/run` whose stderr is collected.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cclaunch::package::Package;
use tokio::io::AsyncBufReadExt;

const BIN: &str = env!("CARGO_BIN_EXE_cclaunch");

/// `cclaunch builder install DIR [--server S]`; DIR.
pub fn install(root: &Path, server: Option<&str>) -> PathBuf {
    let dir = root.join("builder");
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .args(["builder", "install"])
        .arg(&dir);
    if let Some(server) = server {
        cmd.args(["--server", server]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("externalBuilders:")
            && stdout.contains(&format!("path: {}", dir.display())),
        "{stdout}"
    );
    for verb in ["detect", "build", "release", "run"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("bin").join(verb))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "bin/{verb}");
    }
    dir
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The directories the peer hands its builder.
pub struct Layout {
    _root: tempfile::TempDir,
    pub src: PathBuf,
    pub meta: PathBuf,
    pub bld: PathBuf,
    pub release: PathBuf,
    pub rundir: PathBuf,
}

impl Layout {
    pub fn new(metadata_json: &str) -> Layout {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let d = root.path().join(name);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let (src, meta, bld, release, rundir) = (
            dir("src"),
            dir("metadata"),
            dir("bld"),
            dir("release"),
            dir("run"),
        );
        std::fs::write(meta.join("metadata.json"), metadata_json).unwrap();
        Layout {
            _root: root,
            src,
            meta,
            bld,
            release,
            rundir,
        }
    }

    /// `bin/build SRC META BLD`, as the peer runs it.
    pub fn build(&self, builder: &Path, server: Option<&str>) -> Command {
        verb(
            builder,
            "build",
            &[&self.src, &self.meta, &self.bld],
            server,
        )
    }

    /// `bin/run BLD RUNDIR`, as the peer runs it.
    pub fn run(&self, builder: &Path, server: Option<&str>) -> Command {
        verb(builder, "run", &[&self.bld, &self.rundir], server)
    }

    /// A package laid out as the peer does: code.tar.gz extracted into SRC.
    pub fn of(package: &Package) -> Layout {
        let layout = Layout::new(&serde_json::to_string(&package.metadata).unwrap());
        let mut code = Vec::new();
        package
            .read_code(|chunk| {
                code.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap();
        untar_like_fabric(&code, &layout.src);
        layout
    }
}

/// Fabric's `externalbuilder.Untar`: directories 0700, files with the mode
/// their header gives.
pub fn untar_like_fabric(code: &[u8], dst: &Path) {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(code));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let target = dst.join(entry.path().unwrap());
        if entry.header().entry_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            continue;
        }
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.header().mode().unwrap())
            .open(&target)
            .unwrap();
        std::io::Write::write_all(&mut file, &data).unwrap();
    }
}

/// DIR/bin/VERB ARGS with only PATH (and CCLAUNCH_SERVER when given) set.
pub fn verb(builder: &Path, verb: &str, args: &[&Path], server: Option<&str>) -> Command {
    let mut cmd = Command::new(builder.join("bin").join(verb));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .args(args);
    if let Some(server) = server {
        cmd.env("CCLAUNCH_SERVER", server);
    }
    cmd
}

pub fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        text(&out.stderr)
    );
    out
}

/// install, detect, build, release: what the peer does before `run`; the
/// builder's directory.
pub fn install_and_build(root: &Path, layout: &Layout, server: &str) -> PathBuf {
    let builder = install(root, None);
    let server = Some(server);
    run_ok(verb(
        &builder,
        "detect",
        &[&layout.src, &layout.meta],
        server,
    ));
    let built = run_ok(layout.build(&builder, server));
    eprintln!("build: {}", text(&built.stderr));
    run_ok(verb(
        &builder,
        "release",
        &[&layout.bld, &layout.release],
        server,
    ));
    builder
}

pub fn chaincode_json(
    layout: &Layout,
    chaincode_id: &str,
    tls: Option<&cclaunch::launcher::TlsMaterial>,
) {
    let pem = |f: fn(&cclaunch::launcher::TlsMaterial) -> &Vec<u8>| {
        tls.map(|t| text(f(t))).unwrap_or_default()
    };
    let json = serde_json::json!({
        "chaincode_id": chaincode_id,
        "peer_address": "127.0.0.1:7052",
        "client_cert": pem(|t| &t.client_cert),
        "client_key": pem(|t| &t.client_key),
        "root_cert": pem(|t| &t.root_cert),
        "mspid": "Org1MSP",
    });
    std::fs::write(layout.rundir.join("chaincode.json"), json.to_string()).unwrap();
}

/// A `bin/run` process whose stderr lines are collected as they come.
pub struct Running {
    pub child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        let mut cmd = tokio::process::Command::from(cmd);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn({
            let lines = lines.clone();
            async move {
                let mut stderr = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        Running {
            child,
            lines,
            reader,
        }
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line starting with `prefix`, waited for.
    pub async fn line_starting(&self, prefix: &str) -> String {
        self.until(|l| l.starts_with(prefix), prefix).await;
        self.lines()
            .into_iter()
            .find(|l| l.starts_with(prefix))
            .unwrap()
    }

    pub async fn until_line(&self, wanted: &str) {
        self.until(|l| l == wanted, wanted).await
    }

    /// Waits for a line holding `part`.
    pub async fn until_line_with(&self, part: &str) {
        self.until(|l| l.contains(part), part).await
    }

    pub async fn until(&self, matches: impl Fn(&str) -> bool, wanted: &str) {
        let seen = super::eventually(Duration::from_secs(120), || {
            self.lines.lock().unwrap().iter().any(|l| matches(l))
        })
        .await;
        assert!(
            seen,
            "no line {wanted:?} in {:?}",
            self.lines.lock().unwrap()
        );
    }

    /// Waits for the exit; its code and every stderr line.
    pub async fn exit(mut self, within: Duration) -> (Option<i32>, Vec<String>) {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("run exits in time")
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.reader).await;
        let lines = self.lines.lock().unwrap().clone();
        (status.code(), lines)
    }
}

/// A shell package (the `shenv` runtime runs its start.sh, `script`) written
/// under `root`, and the directories a peer hands its builder for it, with a
/// chaincode.json of TLS off.
pub fn shell_layout(root: &Path, label: &str, script: &str) -> (Package, Layout) {
    let code = root.join(format!("{label}-code"));
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("start.sh"), script).unwrap();
    let metadata = cclaunch::package::Metadata {
        path: String::new(),
        kind: "node".into(),
        label: label.into(),
    };
    let file = root.join(format!("{label}.tar.gz"));
    cclaunch::package::write(&metadata, &code, &file).unwrap();
    let package = Package::open(&file, cclaunch::package::Limits::default()).unwrap();
    let layout = Layout::of(&package);
    chaincode_json(&layout, &package.id, None);
    (package, layout)
}

/// A shell package ([`shell_layout`]) installed, built and released through
/// the sidecar at `server`, then its `bin/run` running: the package, the
/// layout (its directories live as long as it does) and the running `run`.
pub fn run_shell(
    root: &Path,
    server: &str,
    label: &str,
    script: &str,
) -> (Package, Layout, Running) {
    let (package, layout) = shell_layout(root, label, script);
    let builder = install_and_build(root, &layout, server);
    let run = Running::spawn(layout.run(&builder, Some(server)));
    (package, layout, run)
}

impl Running {
    /// Waits (120 s at most) for `run` to end with the chaincode's own exit
    /// code `code`, then for the lines it passed on that start with
    /// `prefix`: they must be `expected`, in order. Every stderr line.
    pub async fn exited_with(self, code: i32, prefix: &str, expected: &[&str]) -> Vec<String> {
        let (exited, lines) = self.exit(Duration::from_secs(120)).await;
        assert_eq!(exited, Some(code), "{lines:?}");
        let passed: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(passed, expected, "{lines:?}");
        lines
    }

    /// SIGTERM, as the peer stops chaincode (it SIGKILLs 5 s later): `run`
    /// must exit 143 within those 5 s, having passed on every `tick N` line
    /// in order, none twice. Its stderr lines.
    pub async fn sigterm(self) -> Vec<String> {
        let pid = self.child.id().unwrap().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let (code, lines) = self.exit(Duration::from_secs(5)).await;
        assert_eq!(code, Some(143), "{lines:?}");
        let ticks: Vec<u32> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
            .collect();
        assert_eq!(ticks, (1..=ticks.len() as u32).collect::<Vec<_>>());
        lines
    }
}

/// `command` (the cclaunch binary, its engine set) run as `serve` on the
/// unix socket `dir/cclaunch.sock`, `Build{path}` allowed from `dir`:
/// spawned, killed when dropped, returned once it listens, with the
/// address a peer's builder gives in CCLAUNCH_SERVER.
pub async fn serve_in(mut command: Command, dir: &Path) -> (tokio::process::Child, String) {
    let socket = dir.join("cclaunch.sock");
    command
        .args(["serve", "--socket"])
        .arg(&socket)
        .env("CCLAUNCH_API_PACKAGEDIRS", dir)
        .env("RUST_LOG", "off")
        .stdout(Stdio::null());
    let child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn cclaunch serve");
    let listening = super::eventually(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    assert!(listening, "sidecar never listened on {}", socket.display());
    (child, format!("unix:{}", socket.display()))
}

/// A chaincode that says where it runs (`host NAME`), its id and args, then
/// `tick N` every 0.2 s until stopped.
pub const TICKER: &str =
    "echo \"host $(hostname)\"\necho \"id=$CORE_CHAINCODE_ID_NAME\"\necho \"args=$*\"\n\
     i=0\nwhile true; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done\n";

impl Running {
    /// Waits until a [`TICKER`] run ticked 5 times, having said it runs as
    /// chaincode `package_id` with the peer's args.
    pub async fn ticking_as(&self, package_id: &str) {
        self.line_starting("tick 5").await;
        let lines = self.lines();
        for expected in [
            format!("id={package_id}"),
            "args=--peer.address 127.0.0.1:7052".to_string(),
        ] {
            assert!(lines.contains(&expected), "{expected:?} in {lines:?}");
        }
    }
}
