//! A Unix-socket proxy in front of the real engine: requests a rule lets
//! through are forwarded (one request per connection, so every request is
//! judged), the others are read and never answered, as a wedged engine or a
//! sidecar caught midway would see them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// What the proxy does with a request, from its method and path.
pub enum Verdict {
    Forward,
    /// Forwarded after this long: an engine slow to answer.
    Delay(std::time::Duration),
    /// Read and never answered.
    Hold,
}

type Rule = dyn Fn(&str, &str) -> Verdict + Send + Sync;

pub struct EngineProxy {
    socket: PathBuf,
    held: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl EngineProxy {
    /// Listens on a fresh socket, forwarding to the engine at `upstream`
    /// (a socket path) what `forward` allows.
    pub fn start(
        upstream: &Path,
        forward: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> EngineProxy {
        EngineProxy::judging(upstream, move |method, path| {
            if forward(method, path) {
                Verdict::Forward
            } else {
                Verdict::Hold
            }
        })
    }

    /// Listens on a fresh socket; `judge` says what becomes of each request.
    pub fn judging(
        upstream: &Path,
        judge: impl Fn(&str, &str) -> Verdict + Send + Sync + 'static,
    ) -> EngineProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).expect("bind the proxy socket");
        let held = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(judge);
        let upstream = upstream.to_path_buf();
        let task = tokio::spawn({
            let held = held.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (rule, held, upstream) = (rule.clone(), held.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let _ = relay(client, &upstream, &*rule, &held).await;
                    });
                }
            }
        });
        EngineProxy {
            socket,
            held,
            task,
            _dir: dir,
        }
    }

    /// The real engine's socket, from the test endpoint.
    pub fn upstream() -> PathBuf {
        let endpoint = super::endpoint();
        PathBuf::from(
            endpoint
                .strip_prefix("unix://")
                .expect("tests talk to the engine on a Unix socket"),
        )
    }

    /// For `vm.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The request lines held unanswered so far.
    pub fn held(&self) -> Vec<String> {
        self.held.lock().unwrap().clone()
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut client: UnixStream,
    upstream: &Path,
    forward: &Rule,
    held: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    // The request head; whatever follows it (a body) is forwarded as is.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match forward(method, path) {
        Verdict::Forward => {}
        Verdict::Delay(pause) => tokio::time::sleep(pause).await,
        Verdict::Hold => {
            held.lock().unwrap().push(request_line.clone());
            // Read on, never answer, until the client gives up.
            while client.read(&mut buf).await? > 0 {}
            return Ok(());
        }
    }
    let upgrade = text
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("upgrade:"));
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        // One request per connection (an upgrade keeps its own headers).
        if !upgrade && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut engine = UnixStream::connect(upstream).await?;
    engine.write_all(out.as_bytes()).await?;
    engine.write_all(&head[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut engine).await?;
    Ok(())
}
