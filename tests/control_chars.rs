//! Control characters in chaincode output, from a real chaincode container
//! through a real `cclaunch serve`: its log (stderr) shows them escaped and
//! colours stripped; the Logs API and `cclaunch logs` into a pipe keep the
//! raw bytes; `cclaunch logs` on a terminal keeps colours, escapes the rest.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Env, SHENV};
use tokio::io::AsyncBufReadExt;

/// What the chaincode prints: the Node shim's coloured level, a carriage
/// return that would overwrite the logger prefix, OSC (window title) and
/// erase-line sequences, a tab, a C1 CSI (U+009B), colour on stderr.
const SCRIPT: &str = r"printf '\033[32minfo\033[39m: [c-api] ready\n'
printf 'progress 10%%\rforged prefix\n'
printf 'title\033]0;pwned\007 \033[2Kcleared\ttab\n'
printf 'c1 \302\23331m\n'
printf 'err \033[31mred\033[0m\n' >&2
";

/// The lines as the chaincode wrote them (what the Logs API returns).
const RAW: [&str; 5] = [
    "\u{1b}[32minfo\u{1b}[39m: [c-api] ready",
    "progress 10%\rforged prefix",
    "title\u{1b}]0;pwned\u{7} \u{1b}[2Kcleared\ttab",
    "c1 \u{9b}31m",
    "err \u{1b}[31mred\u{1b}[0m",
];

/// The same lines in the sidecar's log.
const LOGGED: [&str; 5] = [
    "info: [c-api] ready",
    r"progress 10%\rforged prefix",
    "title\\x1b]0;pwned\\x07 \\x1b[2Kcleared\ttab",
    r"c1 \u{9b}31m",
    "err red",
];

fn cli(env: &Env, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"));
    command.args(args);
    as_peer(command, env)
}

/// `cclaunch ARGS` run on a pseudo-terminal by script(1), which copies
/// what the terminal shows to its stdout.
fn on_terminal(env: &Env, args: &str) -> std::process::Command {
    let mut command = std::process::Command::new("script");
    command.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_cclaunch")),
        "/dev/null",
    ]);
    as_peer(command, env)
}

fn as_peer(mut command: std::process::Command, env: &Env) -> std::process::Command {
    command
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .env("CORE_PEER_ID", &env.peer)
        .env("CORE_PEER_NETWORKID", "test")
        .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
        .env_remove("CCLAUNCH_SERVER");
    command
}

fn run(mut command: std::process::Command) -> Vec<u8> {
    let out = command.output().expect("run cclaunch");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_shown_escaped_in_the_log_and_kept_raw_in_the_logs_api() {
    let env = Env::new("ctrl", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
    let socket = env.dir.path().join("run/cclaunch.sock");
    // NO_COLOR: the log's own format adds no escape sequence, so every one
    // in it would be the chaincode's.
    let mut sidecar = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cclaunch serve");
    let stderr = sidecar.stderr.take().unwrap();
    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).await.unwrap_or(0) > 0 {
            let _ = log_tx.send(std::mem::take(&mut line));
        }
    });
    let listening = common::eventually(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })
    .await;
    assert!(listening, "sidecar never listened");

    let package = env.shell_package("ctrl", SCRIPT);
    let server = format!("unix:{}", socket.display());
    let file = package.file.to_str().unwrap();
    run(cli(&env, &["build", file, "--server", &server]));
    run(cli(
        &env,
        &[
            "start",
            file,
            "--server",
            &server,
            "--peer-address",
            "127.0.0.1:7052",
        ],
    ));
    let container = env.launcher.names(&package.id).unwrap().container;

    // The sidecar's log, up to the end of this chaincode's output.
    let target = format!("peer.chaincode.{container}: ");
    let mut log = Vec::new();
    let mut mirrored = Vec::new();
    let closed = format!("Container {container} has closed its IO channel");
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = log_rx.recv().await {
            log.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            if let Some((_, message)) = text.split_once(&target) {
                mirrored.push(message.trim_end_matches('\n').to_string());
            }
            if text.contains(&closed) {
                return;
            }
        }
    })
    .await
    .expect("the chaincode's output is mirrored to the end");
    mirrored.sort();
    let mut expected = LOGGED.map(String::from).to_vec();
    expected.sort();
    assert_eq!(mirrored, expected);
    assert!(
        !log.iter().any(|&b| b == 0x1b || b == b'\r' || b == 0x07),
        "no raw control byte in the log:\n{}",
        String::from_utf8_lossy(&log).escape_debug()
    );

    // The Logs API, through `cclaunch logs` into a pipe: the raw lines.
    let piped = run(cli(&env, &["logs", &package.id, "--server", &server]));
    let mut lines: Vec<&str> = std::str::from_utf8(&piped).unwrap().lines().collect();
    lines.sort();
    let mut raw = RAW.to_vec();
    raw.sort();
    assert_eq!(lines, raw);

    // On a terminal (a pty from script(1)): colours kept and reset at the
    // end of their line, everything else escaped.
    let shown = run(on_terminal(
        &env,
        &format!("logs {} --server {server}", package.id),
    ));
    let shown = String::from_utf8(shown).unwrap();
    for expected in [
        "\u{1b}[32minfo\u{1b}[39m: [c-api] ready\u{1b}[0m",
        r"progress 10%\rforged prefix",
        "title\\x1b]0;pwned\\x07 \\x1b[2Kcleared\ttab",
        r"c1 \u{9b}31m",
        "err \u{1b}[31mred\u{1b}[0m\u{1b}[0m",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} on the terminal:\n{}",
            shown.escape_debug()
        );
    }
    assert!(!shown.contains("\rforged"), "{}", shown.escape_debug());

    common::terminate(&mut sidecar, Duration::from_secs(20)).await;
}
