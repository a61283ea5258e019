//! Fuzzing the sidecar's gRPC request handling on the stable toolchain: a
//! real `cclaunch serve` on a Unix socket, on the real engine, gets Build,
//! Start, Stop, Wait, Logs, List, Health and Gc requests with hostile field
//! values (ids, addresses, env, certificates, paths) and mutated packages,
//! encoded and then often mutated as bytes, sent through a raw codec so the
//! server decodes whatever arrives. Every call must end with a response or a
//! status within a deadline (no hang), the server must not crash or panic,
//! statuses stay bounded, and no container is left behind.
//!
//! The engine-facing part stays short: the sidecar's builder and runtime
//! images do not exist, so a package that survives mutation fails at its image
//! lookup and no container is ever made.
//!
//! `cargo test --test fuzz_api` runs a short deterministic round; `make fuzz`
//! (CCLAUNCH_FUZZ_SECONDS, CCLAUNCH_FUZZ_SEED) a long one.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use cclaunch::proto::v1 as pb;
use common::mutate::{self, Rng};
use futures_util::StreamExt;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Requests in the short (CI) round.
const SHORT_ROUND: u64 = 400;
/// One call's deadline, engine calls included (a slow engine under load).
const DEADLINE: Duration = Duration::from_secs(30);
/// A status message's length at most.
const MESSAGE_MAX: usize = 8 << 10;
/// Stream items read from one call at most (streams here are short).
const ITEMS_MAX: usize = 10_000;
/// Where the fuzz sidecar's images point: nothing there, nothing is built.
const ABSENT: &str = "cclaunch-fuzz/absent:latest";

/// Message bytes as they are, both ways.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Method {
    Build,
    Start,
    Stop,
    Wait,
    Logs,
    List,
    Health,
    Gc,
    Unknown,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Method::Build => "/cclaunch.v1.Launcher/Build",
            Method::Start => "/cclaunch.v1.Launcher/Start",
            Method::Stop => "/cclaunch.v1.Launcher/Stop",
            Method::Wait => "/cclaunch.v1.Launcher/Wait",
            Method::Logs => "/cclaunch.v1.Launcher/Logs",
            Method::List => "/cclaunch.v1.Launcher/List",
            Method::Health => "/cclaunch.v1.Launcher/Health",
            Method::Gc => "/cclaunch.v1.Launcher/Gc",
            Method::Unknown => "/cclaunch.v1.Launcher/Nope",
        }
    }
}

/// Field values that break naive handlers.
fn text(rng: &mut Rng) -> String {
    let hex: String = (0..64)
        .map(|i| b"0123456789abcdef"[(i * 7 + rng.below(16)) % 16] as char)
        .collect();
    match rng.below(14) {
        0 => String::new(),
        1 => format!("fuzz_{}:{hex}", rng.below(100)),
        2 => "../../etc/passwd:1".into(),
        3 => "a b:1".into(),
        4 => "a\nb:1".into(),
        5 => "\u{1b}[2J\r:1".into(),
        6 => "x".repeat(rng.below(1000)),
        7 => "::::".into(),
        8 => "$(reboot):1".into(),
        9 => "127.0.0.1:7052".into(),
        10 => "[::1]:99999".into(),
        11 => "é".repeat(rng.below(200)),
        12 => String::from_utf8_lossy(&rng.some_bytes(64)).into_owned(),
        _ => "CORE_PEER_TLS_ENABLED=false".into(),
    }
}

fn cert(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => Vec::new(),
        1 => b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
        2 => rng.some_bytes(300),
        _ => b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n".to_vec(),
    }
}

/// One request: the method and its message(s), encoded and maybe mutated.
fn request(
    rng: &mut Rng,
    seeds: &[Vec<u8>],
    files: &std::path::Path,
    n: u64,
) -> (Method, Vec<Vec<u8>>) {
    let method = *rng.pick(&[
        Method::Build,
        Method::Build,
        Method::Build,
        Method::Start,
        Method::Start,
        Method::Stop,
        Method::Wait,
        Method::Logs,
        Method::List,
        Method::Health,
        Method::Gc,
        Method::Unknown,
    ]);
    let mut messages: Vec<Vec<u8>> = match method {
        Method::Build => {
            use pb::build_request::Source;
            let package = {
                let seed = rng.pick(seeds).clone();
                mutate::mutate(rng, &seed, seeds)
            };
            match rng.below(10) {
                0 => {
                    let path = files.join(format!("p{n}.tar.gz"));
                    std::fs::write(&path, &package).expect("write package");
                    let path = match rng.below(4) {
                        0 => files.join("missing.tar.gz"),
                        1 => files.to_path_buf(),
                        _ => path,
                    };
                    vec![pb::BuildRequest {
                        source: Some(Source::Path(path.display().to_string())),
                    }
                    .encode_to_vec()]
                }
                1 => vec![
                    pb::BuildRequest {
                        source: Some(Source::Chunk(package.clone())),
                    }
                    .encode_to_vec(),
                    pb::BuildRequest {
                        source: Some(Source::Path(text(rng))),
                    }
                    .encode_to_vec(),
                ],
                2 => Vec::new(),
                _ => {
                    let size = 1 + rng.below(4096);
                    package
                        .chunks(size)
                        .map(|c| {
                            pb::BuildRequest {
                                source: Some(Source::Chunk(c.to_vec())),
                            }
                            .encode_to_vec()
                        })
                        .collect()
                }
            }
        }
        Method::Start => vec![pb::StartRequest {
            package_id: text(rng),
            peer_address: text(rng),
            client_cert: cert(rng),
            client_key: cert(rng),
            root_cert: cert(rng),
            msp_id: text(rng),
            extra_env: (0..rng.below(4)).map(|_| text(rng)).collect(),
            image_of: if rng.chance(30) {
                text(rng)
            } else {
                String::new()
            },
        }
        .encode_to_vec()],
        Method::Stop | Method::Wait => vec![pb::ChaincodeRef {
            package_id: text(rng),
        }
        .encode_to_vec()],
        Method::Logs => vec![pb::LogsRequest {
            package_id: text(rng),
            follow: rng.chance(50),
            tail: rng.next() as u32,
            since: rng.next() as i64,
        }
        .encode_to_vec()],
        Method::List => vec![pb::ListRequest {}.encode_to_vec()],
        Method::Health => vec![pb::HealthRequest {}.encode_to_vec()],
        Method::Gc => vec![pb::GcRequest {
            package_ids: (0..rng.below(3)).map(|_| text(rng)).collect(),
            keep: (0..rng.below(3)).map(|_| text(rng)).collect(),
            caches: rng.chance(5),
        }
        .encode_to_vec()],
        Method::Unknown => vec![rng.some_bytes(32)],
    };
    // Bytes as they arrive over the wire: flipped, cut, grown, or replaced.
    if rng.chance(35) {
        for message in messages.iter_mut() {
            match rng.below(5) {
                0 if !message.is_empty() => {
                    let i = rng.below(message.len());
                    message[i] ^= 1 << rng.below(8);
                }
                1 => message.truncate(rng.below(message.len() + 1)),
                2 => {
                    // A field with a huge or bad length prefix.
                    message.extend([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
                }
                3 => {
                    let len = rng.below(64);
                    *message = rng.bytes(len);
                }
                _ => {
                    let at = rng.below(message.len() + 1);
                    let len = rng.below(16);
                    let junk = rng.bytes(len);
                    message.splice(at..at, junk);
                }
            }
        }
    }
    (method, messages)
}

/// Sends one request and reads what comes back: responses, or the status.
async fn call(channel: &Channel, method: Method, messages: Vec<Vec<u8>>) -> Result<usize, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_static(method.path());
    match method {
        Method::Build => {
            let stream = futures_util::stream::iter(messages);
            let mut responses = grpc
                .streaming(tonic::Request::new(stream), path, Raw)
                .await?
                .into_inner();
            read_all(&mut responses).await
        }
        Method::Logs => {
            let message = messages.into_iter().next().unwrap_or_default();
            let mut responses = grpc
                .server_streaming(tonic::Request::new(message), path, Raw)
                .await?
                .into_inner();
            read_all(&mut responses).await
        }
        _ => {
            let message = messages.into_iter().next().unwrap_or_default();
            grpc.unary(tonic::Request::new(message), path, Raw)
                .await
                .map(|_| 1)
        }
    }
}

async fn read_all(stream: &mut tonic::Streaming<Vec<u8>>) -> Result<usize, Status> {
    let mut items = 0;
    while let Some(item) = stream.next().await {
        item?;
        items += 1;
        if items >= ITEMS_MAX {
            break;
        }
    }
    Ok(items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_answers_mutated_requests_and_leaves_nothing_behind() {
    let settings = mutate::Settings::from_env(SHORT_ROUND);
    let seed = settings.seed;
    let env = common::Env::new("fuzzapi", &[]).await;
    let socket = env.dir.path().join("cclaunch.sock");
    let files = env.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let stderr_path = env.dir.path().join("sidecar.stderr");
    let mut sidecar = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        .env("CORE_CHAINCODE_BUILDER", ABSENT)
        .env("CORE_CHAINCODE_GOLANG_RUNTIME", ABSENT)
        .env("CORE_CHAINCODE_NODE_RUNTIME", ABSENT)
        .env("CORE_CHAINCODE_JAVA_RUNTIME", ABSENT)
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let channel = common::grpc::connect(&socket).await;

    let seeds: Vec<Vec<u8>> = ["testdata/fuzz/corpus", "testdata/good"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(common::repo().join(dir)).unwrap())
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut n = 0u64;
    let mut last_report = Instant::now();
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let mut examples = std::collections::BTreeMap::<String, String>::new();
    loop {
        if settings.done(n, began) {
            break;
        }
        n += 1;
        let (method, messages) = request(&mut rng, &seeds, &files, n);
        let outcome = tokio::time::timeout(DEADLINE, call(&channel, method, messages)).await;
        let code = match outcome {
            Err(_) => {
                failures.push(format!("#{n} {method:?}: no answer in {DEADLINE:?}"));
                continue;
            }
            Ok(Ok(_)) => Code::Ok,
            Ok(Err(status)) => {
                if status.message().len() > MESSAGE_MAX {
                    failures.push(format!(
                        "#{n} {method:?}: a {}-byte status message",
                        status.message().len()
                    ));
                }
                // The client gives this when a status is too large to carry.
                if status.code() == Code::ResourceExhausted {
                    failures.push(format!("#{n} {method:?}: {status}"));
                }
                if status.code() == Code::Unavailable {
                    failures.push(format!("#{n} {method:?}: the sidecar went away: {status}"));
                }
                examples
                    .entry(format!("{method:?} {:?}", status.code()))
                    .or_insert_with(|| status.message().chars().take(160).collect());
                status.code()
            }
        };
        *codes.entry(format!("{method:?} {code:?}")).or_default() += 1;
        if settings.long() && last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "fuzz api: {n} requests in {:?}, {} failures",
                began.elapsed(),
                failures.len()
            );
        }
        if let Ok(Some(exit)) = sidecar.try_wait() {
            failures.push(format!("#{n} {method:?}: the sidecar exited: {exit}"));
            break;
        }
    }
    eprintln!(
        "fuzz api (seed {seed}): {n} requests in {:?}: {codes:?}",
        began.elapsed()
    );
    for (class, message) in &examples {
        eprintln!("  {class}: {message}");
    }

    // Still serving, and nothing left on the engine.
    let mut health = pb::launcher_client::LauncherClient::new(channel.clone());
    let alive = tokio::time::timeout(DEADLINE, health.health(pb::HealthRequest {})).await;
    assert!(
        matches!(alive, Ok(Ok(_))),
        "health after the run: {alive:?}"
    );
    let filter = format!("label={}={}", cclaunch::runtime::LABEL_PEER_ID, env.peer);
    let left = common::docker(&["ps", "-aq", "--filter", &filter]);
    assert!(left.trim().is_empty(), "containers left behind: {left}");
    let status = common::terminate(&mut sidecar, Duration::from_secs(30)).await;
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        !stderr.contains("panicked"),
        "the sidecar panicked:\n{stderr}"
    );
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every method was reached and refused cleanly at least once.
    for method in ["Build", "Start", "Stop", "Logs", "Gc"] {
        assert!(
            codes
                .keys()
                .any(|k| k.starts_with(method) && !k.ends_with("Ok")),
            "{method} never refused: {codes:?}"
        );
    }
}
