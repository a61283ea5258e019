//! Configuration: a YAML file with Fabric's core.yaml key names (`vm.*`,
//! `chaincode.*`, `peer.*`), plus cclaunch's own keys under `cclaunch.*`.
//!
//! Precedence, lowest first: built-in defaults (Fabric's sampleconfig values),
//! the file, then environment variables named the way a peer's viper names them:
//! `CORE_` + the key path upper-cased with `.` as `_` (`CORE_PEER_ID`,
//! `CORE_CHAINCODE_BUILDER`); cclaunch keys use `CCLAUNCH_` (`CCLAUNCH_FABRICVERSION`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime::{self, HostConfig};
use serde::Deserialize;
use serde_yaml::Value;

/// Built-in defaults. Image names and peer identity are Fabric's own defaults.
pub const DEFAULTS: &str = r#"
vm:
  endpoint: unix:///var/run/docker.sock
  docker:
    attachStdout: true
    hostConfig:
      NetworkMode: host
      LogConfig:
        Type: json-file
        Config:
          max-size: "50m"
          max-file: "5"
      Memory: 2147483648
chaincode:
  builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)
  pull: false
  golang:
    runtime: $(DOCKER_NS)/fabric-baseos:$(TWO_DIGIT_VERSION)
    dynamicLink: false
  java:
    runtime: $(DOCKER_NS)/fabric-javaenv:$(TWO_DIGIT_VERSION)
  node:
    runtime: $(DOCKER_NS)/fabric-nodeenv:$(TWO_DIGIT_VERSION)
  startuptimeout: 300s
  logging:
    level: info
    shim: warning
    format: '%{color}%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> %{level:.4s} %{id:03x}%{color:reset} %{message}'
peer:
  id: jdoe
  networkId: dev
  localMspId: SampleOrg
cclaunch:
  fabricVersion: 2.5.16
  package:
    maxUnpackedBytes: 1073741824
    maxPackageBytes: 104857600
    maxConcurrentUploads: 4
    uploadIdleTimeout: 30s
  build:
    networkMode: ""
    env: []
    mounts: []
    timeout: 10m
    caches: true
    cacheVolume: cclaunch-cache
    cacheMaxBytes: 10737418240
  output:
    maxLineBytes: 65536
    maxLinesPerSecond: 10000
    maxBytesPerSecond: 1048576
    burst: 30s
    maxLogStreams: 128
  stateDir: ""
  prepare: false
  builder:
    types: golang,node,java,ccaas
    ccaas:
      templateValues: {}
  api:
    packageDirs: ""
    headerTimeout: 10s
    idleTimeout: 120s
    keepaliveInterval: 60s
    keepaliveTimeout: 20s
    maxConnections: 128
    maxStreams: 100
  engine:
    kind: docker
    requestTimeout: 15s
    slowRequestTimeout: 60s
    healthTimeout: 5s
    kubernetes:
      kubeconfig: ""
      namespace: ""
      hostNetwork: true
      imageSource: node
      nodeSelector: ""
      tolerations: ""
      imagePullSecrets: ""
      owner:
        name: ""
        uid: ""
      resources:
        requests:
          cpu: ""
          memory: ""
        limits:
          cpu: ""
          memory: ""
  swarm:
    endpoint: ""
    network: host
    constraints: ""
  registry:
    address: ""
    config: ""
"#;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid YAML", path.display())]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("invalid configuration{}: {source}", origin.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Invalid {
        origin: Option<PathBuf>,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("invalid vm.docker.hostConfig{}: the engine API would not take it", origin.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    HostConfig {
        origin: Option<PathBuf>,
        #[source]
        source: serde_json::Error,
    },
    #[error("cclaunch.engine.kind is swarm, so cclaunch.registry.address must name the registry every node pulls from")]
    NoRegistry,
    #[error("cclaunch.engine.kubernetes.imageSource is registry, so cclaunch.registry.address must name the registry the nodes pull from")]
    NoKubernetesRegistry,
    #[error("cclaunch.engine.kubernetes.owner needs both name and uid (the downward API's metadata.name and metadata.uid), or neither")]
    HalfOwner,
    #[error("invalid {key}: {reason}")]
    Placement { key: &'static str, reason: String },
    #[error("invalid quantity {value:?} for {key}: use Kubernetes' quantity syntax, as in 512Mi, 2Gi, 500m or 1")]
    Quantity { key: String, value: String },
    #[error("cannot read registry credentials from {} (cclaunch.registry.config)", path.display())]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid duration {value:?} for {key}: use a number with a unit (ms, s, m, h), as in 300s"
    )]
    Duration { key: &'static str, value: String },
    #[error("invalid {key}: 0; use a number above zero")]
    ZeroCount { key: &'static str },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub vm: Vm,
    pub chaincode: Chaincode,
    pub peer: Peer,
    pub cclaunch: Cclaunch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vm {
    pub endpoint: String,
    pub docker: VmDocker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmDocker {
    pub attach_stdout: bool,
    /// Docker's own HostConfig, keys as the engine API spells them (checked
    /// against the engine API's types at load).
    pub host_config: HostConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chaincode {
    pub builder: String,
    pub pull: bool,
    pub golang: Golang,
    pub java: Runtime,
    pub node: Runtime,
    /// Go duration syntax, as in core.yaml.
    #[serde(rename = "startuptimeout")]
    pub startup_timeout: String,
    pub logging: Logging,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Golang {
    pub runtime: String,
    pub dynamic_link: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Runtime {
    pub runtime: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Logging {
    pub level: String,
    pub shim: String,
    pub format: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub id: String,
    pub network_id: String,
    pub local_msp_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cclaunch {
    /// The Fabric version written into images (LABEL, CORE_CHAINCODE_BUILDLEVEL)
    /// and substituted for `$(PROJECT_VERSION)` / `$(TWO_DIGIT_VERSION)`.
    pub fabric_version: String,
    pub package: PackageLimits,
    pub build: Build,
    pub output: Output,
    /// Where output-mirror checkpoints are kept across restarts; empty =
    /// `$XDG_STATE_HOME/cclaunch`, else `$HOME/.local/state/cclaunch`, else
    /// `/var/lib/cclaunch`.
    pub state_dir: String,
    /// Create each chaincode's next container ahead of its start, after a
    /// build and after a stop (a sidecar on Docker only). Off by default:
    /// a stop then leaves a container behind (docs/CONFIGURATION.md).
    pub prepare: bool,
    pub builder: Builder,
    pub api: Api,
    pub engine: Engine,
    pub swarm: Swarm,
    pub registry: RegistryConfig,
}

/// Where chaincode runs (`cclaunch.engine.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// On the Docker engine at `vm.endpoint`, beside the builds.
    Docker,
    /// As services of the Docker Swarm at `cclaunch.swarm.endpoint`; images
    /// are built on `vm.endpoint` and pushed to `cclaunch.registry`.
    Swarm,
    /// As Pods of the Kubernetes cluster `cclaunch.engine.kubernetes`
    /// names; images are built on `vm.endpoint`.
    Kubernetes,
}

/// `cclaunch.engine.kubernetes`: the cluster, the namespace and how each
/// chaincode Pod is made (docs/KUBERNETES.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubernetes {
    /// The kubeconfig file (its current context); empty: the Pod's own
    /// service account (in-cluster).
    pub kubeconfig: String,
    /// Where chaincode Pods go; empty: the kubeconfig context's namespace
    /// (in-cluster: the service account's).
    pub namespace: String,
    /// `true`: chaincode shares its node's network, and reaches the peer's
    /// address as on Docker; `false`: the pod network.
    pub host_network: bool,
    pub image_source: ImageSource,
    /// `key=value` node labels a chaincode Pod's node must have (also read
    /// from a map, as a Pod spec writes it).
    #[serde(deserialize_with = "selector_entries")]
    pub node_selector: Vec<String>,
    /// Taints chaincode Pods tolerate, as `kubectl taint` writes them:
    /// `key[=value][:Effect]` (also read from a Pod spec's objects).
    #[serde(deserialize_with = "toleration_entries")]
    pub tolerations: Vec<String>,
    /// Secrets (in the namespace) with the registry credentials the nodes
    /// pull chaincode images with.
    #[serde(deserialize_with = "names")]
    pub image_pull_secrets: Vec<String>,
    pub resources: Resources,
    /// A Pod in the namespace that owns every chaincode Pod (the sidecar's
    /// own, from the downward API): deleting it deletes them.
    pub owner: Owner,
}

/// `cclaunch.engine.kubernetes.owner`: both set, or neither.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Owner {
    /// Its name (downward API: `metadata.name`).
    pub name: String,
    /// Its uid (downward API: `metadata.uid`).
    pub uid: String,
}

/// Where the node's kubelet finds a chaincode image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// Already on the node (loaded into its container runtime): never pulled.
    Node,
    /// Pushed to `cclaunch.registry` after the build and pulled by digest.
    Registry,
}

/// A chaincode Pod's resource requests and limits, as Kubernetes quantities;
/// empty: none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    pub requests: Quantities,
    pub limits: Quantities,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Quantities {
    #[serde(deserialize_with = "quantity")]
    pub cpu: String,
    #[serde(deserialize_with = "quantity")]
    pub memory: String,
}

/// A quantity as written (`512Mi`; a bare number may come as a YAML number).
fn quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(scalar(&Value::deserialize(d)?))
}

/// Whether `text` is a Kubernetes quantity (`1`, `0.5`, `500m`, `2Gi`, `1e3`).
fn is_quantity(text: &str) -> bool {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number_ok =
        !number.is_empty() && number.chars().filter(|&c| c == '.').count() <= 1 && number != ".";
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    number_ok && suffix_ok
}

/// `cclaunch.swarm`: the swarm manager and how services are placed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Swarm {
    /// The manager's API (`unix://...`, `tcp://host:2375`); empty: `vm.endpoint`.
    pub endpoint: String,
    /// `host` (chaincode reaches the peer's address as on Docker) or an
    /// overlay network's name.
    pub network: String,
    /// Placement constraints, as `docker service create --constraint` takes them.
    #[serde(deserialize_with = "names")]
    pub constraints: Vec<String>,
}

/// `cclaunch.registry`: where images built for a cluster are pushed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryConfig {
    /// `host:port`; empty: none.
    pub address: String,
    /// A Docker `config.json` holding the registry's credentials; empty: none.
    pub config: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageLimits {
    pub max_unpacked_bytes: u64,
    /// A package uploaded in chunks may be this long (compressed, as sent).
    pub max_package_bytes: u64,
    /// Uploads spooled at once (each holds a file until its build ends).
    pub max_concurrent_uploads: usize,
    /// An upload with no chunk for this long is abandoned (Go duration).
    pub upload_idle_timeout: String,
}

/// Settings for the build container (Fabric gives it none of these).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    /// Network mode of the build container; empty = the engine's default.
    pub network_mode: String,
    /// Extra `KEY=value` entries for the build container (proxies, GOPROXY,
    /// npm_config_registry, ...), after the platform's own.
    pub env: Vec<String>,
    /// Read-only bind mounts `host:container` (a CA bundle, an .npmrc).
    pub mounts: Vec<String>,
    /// How long a build may take (Go duration); then it is ended.
    pub timeout: String,
    /// Go's build and module caches and npm's cache kept between builds in
    /// volumes of cclaunch's (`cclaunch-cache-<platform>`).
    pub caches: bool,
    /// Cache volumes are named `<cacheVolume>-<platform>-<scope>`.
    pub cache_volume: String,
    /// A cache volume found holding more than this when a build begins is
    /// removed after that build (the next build starts it afresh); 0 = no
    /// cap.
    pub cache_max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// A longer line is mirrored in pieces of this size (memory stays bounded).
    pub max_line_bytes: usize,
    /// Mirrored lines per second per chaincode (0 = no limit); more are
    /// dropped from the mirror, not from the engine's log.
    pub max_lines_per_second: u64,
    /// Mirrored bytes per second per chaincode (0 = no limit).
    pub max_bytes_per_second: u64,
    /// How much output above the rates may come at once, as a time at the
    /// full rate (Go duration).
    pub burst: String,
    /// `Logs` streams open at once; more are refused.
    pub max_log_streams: usize,
}

/// The external builder (`cclaunch builder ...`), run by a peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    /// The metadata.json types `detect` claims, matched case-insensitively.
    /// A list, or one comma-separated string (so `CCLAUNCH_BUILDER_TYPES`
    /// can set it).
    #[serde(deserialize_with = "names")]
    pub types: Vec<String>,
    pub ccaas: Ccaas,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ccaas {
    /// Values for `{{.key}}` in a ccaas package's connection.json, under
    /// those of `CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG` (Fabric's variable).
    pub template_values: std::collections::BTreeMap<String, serde_json::Value>,
}

fn names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Text(String),
    }
    let list = match Names::deserialize(d)? {
        Names::List(list) => list,
        Names::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(list
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect())
}

/// A node selector as text entries, or as a Pod spec's map (`disk: ssd`).
fn selector_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Selector {
        Map(std::collections::BTreeMap<String, String>),
        Names(#[serde(deserialize_with = "names")] Vec<String>),
    }
    Ok(
        match Selector::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
            "expected key=value entries (a list or one comma-separated string) or a map of labels",
        )
        })? {
            Selector::Map(map) => map.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            Selector::Names(names) => names,
        },
    )
}

/// Tolerations as `kubectl taint` text, or as a Pod spec's objects
/// (`{key, operator, value, effect}`), turned into that text.
fn toleration_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Object {
        key: String,
        #[serde(default)]
        operator: Option<String>,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        effect: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Text(String),
        Object(Object),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tolerations {
        List(Vec<Entry>),
        Text(String),
    }
    let expected = "expected `key[=value][:Effect]` entries (a list or one comma-separated string) or objects with key, operator, value, effect";
    let entries =
        match Tolerations::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
            Tolerations::Text(text) => vec![Entry::Text(text)],
            Tolerations::List(list) => list,
        };
    let mut texts = Vec::new();
    for entry in entries {
        match entry {
            Entry::Text(text) => texts.extend(text.split(',').map(str::to_string)),
            Entry::Object(o) => {
                if o.key.trim().is_empty() {
                    return Err(serde::de::Error::custom(
                        "a toleration object has no key (an empty key tolerating every taint is not taken here: name the taints)",
                    ));
                }
                let value = match (o.operator.as_deref(), o.value) {
                    (Some("Exists"), Some(v)) if !v.is_empty() => {
                        return Err(serde::de::Error::custom(format!(
                            "the toleration of {:?} has operator Exists and a value",
                            o.key
                        )))
                    }
                    (Some("Exists"), _) => None,
                    (None | Some("Equal"), v) => Some(v.unwrap_or_default()),
                    (Some(other), _) => {
                        return Err(serde::de::Error::custom(format!(
                            "the toleration of {:?} has operator {other:?}, not Equal or Exists",
                            o.key
                        )))
                    }
                };
                let mut text = o.key;
                if let Some(value) = value {
                    text = format!("{text}={value}");
                }
                if let Some(effect) = o.effect.filter(|e| !e.is_empty()) {
                    text = format!("{text}:{effect}");
                }
                texts.push(text);
            }
        }
    }
    Ok(texts
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect())
}

/// The sidecar API (`cclaunch serve`): where `Build{path}` may read, and
/// the bounds of connections to its listeners (Unix socket, TCP,
/// operations), each listener on its own.
#[derive(Debug, Clone)]
pub struct Api {
    /// Directories `Build{path}` may read package files from; none = path
    /// builds refused. A list, or one comma-separated string (so
    /// `CCLAUNCH_API_PACKAGEDIRS` can set it).
    pub package_dirs: Vec<String>,
    /// A new connection must send its first request within this.
    pub header_timeout: Duration,
    /// A connection with no call open for this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 pings on a connection quiet for this long...
    pub keepalive_interval: Duration,
    /// ...which the client must answer within this, or it is dropped.
    pub keepalive_timeout: Duration,
    /// Open connections per listener; more are closed at once.
    pub max_connections: usize,
    /// Calls open at once on one HTTP/2 connection.
    pub max_streams: u32,
}

/// How long an engine call may take before it fails as timed out.
#[derive(Debug, Clone)]
pub struct Engine {
    pub kind: EngineKind,
    /// The cluster, for `kind: kubernetes`.
    pub kubernetes: Kubernetes,
    /// Inspect, list, stop, kill, remove; the first answer of attach, logs
    /// and wait (which then stream as long as they need).
    pub request_timeout: Duration,
    /// Create, start, upload, download, image removal.
    pub slow_request_timeout: Duration,
    /// The health check: ping, version and one real listing.
    pub health_timeout: Duration,
}

impl<'de> Deserialize<'de> for Api {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Api, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(deserialize_with = "names")]
            package_dirs: Vec<String>,
            header_timeout: Value,
            idle_timeout: Value,
            keepalive_interval: Value,
            keepalive_timeout: Value,
            max_connections: Value,
            max_streams: Value,
        }
        let raw = Raw::deserialize(d)?;
        let at = |key: &str| format!("cclaunch.api.{key}");
        (|| -> Result<Api, String> {
            Ok(Api {
                package_dirs: raw.package_dirs,
                header_timeout: duration_at(&at("headerTimeout"), &raw.header_timeout)?,
                idle_timeout: duration_at(&at("idleTimeout"), &raw.idle_timeout)?,
                keepalive_interval: duration_at(&at("keepaliveInterval"), &raw.keepalive_interval)?,
                keepalive_timeout: duration_at(&at("keepaliveTimeout"), &raw.keepalive_timeout)?,
                max_connections: count_at(&at("maxConnections"), &raw.max_connections)?,
                max_streams: count_at(&at("maxStreams"), &raw.max_streams)?,
            })
        })()
        .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Engine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Engine, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            kind: EngineKind,
            kubernetes: Kubernetes,
            request_timeout: Value,
            slow_request_timeout: Value,
            health_timeout: Value,
        }
        let raw = Raw::deserialize(d)?;
        let at = |key: &str| format!("cclaunch.engine.{key}");
        (|| -> Result<Engine, String> {
            Ok(Engine {
                kind: raw.kind,
                kubernetes: raw.kubernetes,
                request_timeout: duration_at(&at("requestTimeout"), &raw.request_timeout)?,
                slow_request_timeout: duration_at(
                    &at("slowRequestTimeout"),
                    &raw.slow_request_timeout,
                )?,
                health_timeout: duration_at(&at("healthTimeout"), &raw.health_timeout)?,
            })
        })()
        .map_err(serde::de::Error::custom)
    }
}

/// A YAML scalar as it was written.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// A Go-style duration (`10s`, `1m30s`, `500ms`) above zero.
fn duration_at(key: &str, value: &Value) -> Result<Duration, String> {
    let text = scalar(value);
    parse_duration(&text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("{key}: invalid duration {text:?}: use a number above zero with a unit (ms, s, m, h), as in 10s")
        })
}

/// A whole number above zero.
fn count_at<T: TryFrom<u64>>(key: &str, value: &Value) -> Result<T, String> {
    value
        .as_u64()
        .filter(|n| *n > 0)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{key}: {:?} is not a count above zero", scalar(value)))
}

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Error> {
        Self::load_with_env(file, |key| std::env::var(key).ok())
    }

    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, Error> {
        let config: Config =
            serde_yaml::from_value(tree(file, env)?).map_err(|source| Error::Invalid {
                origin: file.map(Path::to_path_buf),
                source,
            })?;
        runtime::docker::check_host_config(&config.vm.docker.host_config).map_err(|source| {
            Error::HostConfig {
                origin: file.map(Path::to_path_buf),
                source,
            }
        })?;
        if config.cclaunch.engine.kind == EngineKind::Swarm
            && config.cclaunch.registry.address.is_empty()
        {
            return Err(Error::NoRegistry);
        }
        config.check_kubernetes()?;
        config.check_counts()?;
        config.startup_timeout()?;
        config.build_timeout()?;
        config.upload_idle_timeout()?;
        config.output_burst()?;
        Ok(config)
    }

    /// `cclaunch.engine.kubernetes`: a registry when images come from one,
    /// quantities Kubernetes would take.
    fn check_kubernetes(&self) -> Result<(), Error> {
        let kubernetes = &self.cclaunch.engine.kubernetes;
        if self.cclaunch.engine.kind == EngineKind::Kubernetes
            && kubernetes.image_source == ImageSource::Registry
            && self.cclaunch.registry.address.is_empty()
        {
            return Err(Error::NoKubernetesRegistry);
        }
        if kubernetes.owner.name.is_empty() != kubernetes.owner.uid.is_empty() {
            return Err(Error::HalfOwner);
        }
        use runtime::kubernetes::placement;
        let placed = |key, checked: Result<(), String>| {
            checked.map_err(|reason| Error::Placement { key, reason })
        };
        placed(
            "cclaunch.engine.kubernetes.nodeSelector",
            placement::node_selector(&kubernetes.node_selector).map(drop),
        )?;
        placed(
            "cclaunch.engine.kubernetes.tolerations",
            placement::tolerations(&kubernetes.tolerations).map(drop),
        )?;
        placed(
            "cclaunch.engine.kubernetes.imagePullSecrets",
            placement::pull_secrets(&kubernetes.image_pull_secrets).map(drop),
        )?;
        let resources = &kubernetes.resources;
        for (key, value) in [
            ("requests.cpu", &resources.requests.cpu),
            ("requests.memory", &resources.requests.memory),
            ("limits.cpu", &resources.limits.cpu),
            ("limits.memory", &resources.limits.memory),
        ] {
            if !value.is_empty() && !is_quantity(value) {
                return Err(Error::Quantity {
                    key: format!("cclaunch.engine.kubernetes.resources.{key}"),
                    value: value.clone(),
                });
            }
        }
        Ok(())
    }

    /// `cclaunch.registry` with its credentials (from the Docker config.json
    /// it names: `auths.<address>.auth`, base64 of `user:password`), or
    /// `None` when no registry is set.
    pub fn registry(&self) -> Result<Option<runtime::Registry>, Error> {
        let registry = &self.cclaunch.registry;
        if registry.address.is_empty() {
            return Ok(None);
        }
        let mut found = runtime::Registry {
            address: registry.address.clone(),
            ..Default::default()
        };
        if registry.config.is_empty() {
            return Ok(Some(found));
        }
        let path = PathBuf::from(&registry.config);
        let invalid = |what: &str| Error::Credentials {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Credentials {
            path: path.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| invalid("not JSON"))?;
        let Some(auth) = json["auths"][&registry.address]["auth"].as_str() else {
            return Ok(Some(found));
        };
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| invalid("auths.<address>.auth is not base64 of user:password"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("auths.<address>.auth is not base64 of user:password"))?;
        found.username = user.to_string();
        found.password = password.to_string();
        Ok(Some(found))
    }

    /// An image name from config with Fabric's `$(...)` variables substituted.
    pub fn image(&self, configured: &str) -> String {
        configured
            .replace("$(ARCH)", go_arch())
            .replace("$(PROJECT_VERSION)", &self.cclaunch.fabric_version)
            .replace(
                "$(TWO_DIGIT_VERSION)",
                &two_digit(&self.cclaunch.fabric_version),
            )
            .replace("$(DOCKER_NS)", "hyperledger")
    }

    /// `cclaunch.stateDir`, or the default for this user.
    pub fn state_dir(&self) -> PathBuf {
        if !self.cclaunch.state_dir.is_empty() {
            return PathBuf::from(&self.cclaunch.state_dir);
        }
        let var = |key| std::env::var_os(key).filter(|v| !v.is_empty());
        match (var("XDG_STATE_HOME"), var("HOME")) {
            (Some(state), _) => Path::new(&state).join("cclaunch"),
            (None, Some(home)) => Path::new(&home).join(".local/state/cclaunch"),
            (None, None) => PathBuf::from("/var/lib/cclaunch"),
        }
    }

    /// `chaincode.startuptimeout`, more than zero.
    pub fn startup_timeout(&self) -> Result<Duration, Error> {
        positive("chaincode.startuptimeout", &self.chaincode.startup_timeout)
    }

    /// Bounds where zero would refuse everything (every package, upload or
    /// `Logs` stream) rather than mean "no limit", as the rates' zero does.
    fn check_counts(&self) -> Result<(), Error> {
        let (package, output) = (&self.cclaunch.package, &self.cclaunch.output);
        for (key, value) in [
            (
                "cclaunch.package.maxUnpackedBytes",
                package.max_unpacked_bytes,
            ),
            (
                "cclaunch.package.maxPackageBytes",
                package.max_package_bytes,
            ),
            (
                "cclaunch.package.maxConcurrentUploads",
                package.max_concurrent_uploads as u64,
            ),
            ("cclaunch.output.maxLineBytes", output.max_line_bytes as u64),
            (
                "cclaunch.output.maxLogStreams",
                output.max_log_streams as u64,
            ),
        ] {
            if value == 0 {
                return Err(Error::ZeroCount { key });
            }
        }
        Ok(())
    }

    /// `cclaunch.build.timeout`, more than zero.
    pub fn build_timeout(&self) -> Result<Duration, Error> {
        positive("cclaunch.build.timeout", &self.cclaunch.build.timeout)
    }

    /// `cclaunch.package.uploadIdleTimeout`, more than zero.
    pub fn upload_idle_timeout(&self) -> Result<Duration, Error> {
        positive(
            "cclaunch.package.uploadIdleTimeout",
            &self.cclaunch.package.upload_idle_timeout,
        )
    }

    /// `cclaunch.output.burst`.
    pub fn output_burst(&self) -> Result<Duration, Error> {
        parse_duration(&self.cclaunch.output.burst).ok_or_else(|| Error::Duration {
            key: "cclaunch.output.burst",
            value: self.cclaunch.output.burst.clone(),
        })
    }

    /// The three `CORE_CHAINCODE_LOGGING_*` entries a peer hands its chaincode.
    pub fn logging_env(&self) -> [String; 3] {
        let logging = &self.chaincode.logging;
        [
            format!(
                "CORE_CHAINCODE_LOGGING_LEVEL={}",
                log_level("chaincode.logging.level", &logging.level)
            ),
            format!(
                "CORE_CHAINCODE_LOGGING_SHIM={}",
                log_level("chaincode.logging.shim", &logging.shim)
            ),
            format!("CORE_CHAINCODE_LOGGING_FORMAT={}", logging.format),
        ]
    }
}

/// A duration that must be more than zero (a zero timeout would fail
/// everything at once).
fn positive(key: &'static str, text: &str) -> Result<Duration, Error> {
    parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Duration {
            key,
            value: text.to_string(),
        })
}

/// Fabric's `getLogLevelFromViper`: a known level name becomes zap's spelling
/// of it; an unknown one falls back to `info`, with a warning.
fn log_level(key: &str, name: &str) -> &'static str {
    match name {
        "PAYLOAD" | "payload" => "Level(-2)",
        "DEBUG" | "debug" => "debug",
        "INFO" | "info" | "NOTICE" | "notice" => "info",
        "WARNING" | "WARN" | "warning" | "warn" => "warn",
        "ERROR" | "error" | "CRITICAL" | "critical" => "error",
        "DPANIC" | "dpanic" => "dpanic",
        "PANIC" | "panic" => "panic",
        "FATAL" | "fatal" => "fatal",
        other => {
            tracing::warn!("{key} has invalid log level {other}. defaulting to info");
            "info"
        }
    }
}

/// `2.5.16` → `2.5`; a version without dots is kept; a leading `v` is dropped.
fn two_digit(version: &str) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    match version.rfind('.') {
        Some(i) => version[..i].to_string(),
        None => version.to_string(),
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Go's duration syntax for the forms core.yaml uses: `300s`, `1m30s`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(seconds);
        rest = tail;
    }
    Some(total)
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything else
/// replaces. A null in the overlay (an empty YAML key) keeps the default.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (slot, value) => *slot = value,
    }
}

/// Every scalar leaf can be overridden from the environment, as viper does.
/// So can a setting the file gave as a list or a map (tolerations, a
/// nodeSelector): the variable's text replaces it whole, in the text form
/// each such setting also reads.
fn apply_env(node: &mut Value, path: &mut Vec<String>, env: &impl Fn(&str) -> Option<String>) {
    if !path.is_empty() && matches!(node, Value::Mapping(_) | Value::Sequence(_)) {
        if let Some(text) = env(&env_name(path)) {
            *node = Value::String(text);
            return;
        }
    }
    match node {
        Value::Mapping(map) => {
            let keys: Vec<Value> = map.keys().cloned().collect();
            for key in keys {
                let Some(name) = key.as_str().map(str::to_string) else {
                    continue;
                };
                path.push(name);
                if let Some(child) = map.get_mut(&key) {
                    apply_env(child, path, env);
                }
                path.pop();
            }
        }
        Value::Sequence(_) | Value::Tagged(_) => {}
        leaf => {
            if let Some(text) = env(&env_name(path)) {
                *leaf = serde_yaml::from_str::<Value>(&text)
                    .ok()
                    .filter(|v| !matches!(v, Value::Mapping(_) | Value::Sequence(_) | Value::Null))
                    .unwrap_or(Value::String(text));
            }
        }
    }
}

fn env_name(path: &[String]) -> String {
    let joined = path.join("_").to_uppercase().replace('-', "_");
    match joined.strip_prefix("CCLAUNCH_") {
        Some(rest) => format!("CCLAUNCH_{rest}"),
        None => format!("CORE_{joined}"),
    }
}

/// Defaults merged with `file` and the environment, as a YAML tree.
fn tree(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Value, Error> {
    let mut tree: Value = serde_yaml::from_str(DEFAULTS).expect("built-in defaults are valid YAML");
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let overlay: Value = serde_yaml::from_str(&text).map_err(|source| Error::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        merge(&mut tree, overlay);
    }
    apply_env(&mut tree, &mut Vec::new(), &env);
    Ok(tree)
}

/// The effective configuration as YAML (for `cclaunch config`), validated.
pub fn effective_yaml(file: Option<&Path>) -> Result<String, Error> {
    Config::load(file)?;
    let tree = tree(file, |key| std::env::var(key).ok())?;
    Ok(serde_yaml::to_string(&tree).unwrap_or_default())
}

impl From<&Engine> for runtime::kubernetes::KubernetesOptions {
    /// The Kubernetes runner's options: `cclaunch.engine.kubernetes` and the
    /// engine's timeouts (a start may fail to pull for the slow timeout).
    fn from(engine: &Engine) -> runtime::kubernetes::KubernetesOptions {
        use runtime::kubernetes::{placement, KubernetesOptions, Quantities};
        let k = &engine.kubernetes;
        let quantities = |q: &self::Quantities| Quantities {
            cpu: q.cpu.clone(),
            memory: q.memory.clone(),
        };
        KubernetesOptions {
            kubeconfig: (!k.kubeconfig.is_empty()).then(|| PathBuf::from(&k.kubeconfig)),
            namespace: k.namespace.clone(),
            host_network: k.host_network,
            image_pull_policy: match k.image_source {
                ImageSource::Node => "Never",
                ImageSource::Registry => "IfNotPresent",
            }
            .to_string(),
            requests: quantities(&k.resources.requests),
            limits: quantities(&k.resources.limits),
            // Checked when the configuration was loaded.
            node_selector: placement::node_selector(&k.node_selector).unwrap_or_default(),
            tolerations: placement::tolerations(&k.tolerations).unwrap_or_default(),
            image_pull_secrets: placement::pull_secrets(&k.image_pull_secrets).unwrap_or_default(),
            owner: (!k.owner.name.is_empty()).then(|| (k.owner.name.clone(), k.owner.uid.clone())),
            start_deadline: engine.slow_request_timeout,
            timeouts: engine.into(),
            ..KubernetesOptions::default()
        }
    }
}

impl From<&Engine> for runtime::docker::Timeouts {
    fn from(engine: &Engine) -> runtime::docker::Timeouts {
        runtime::docker::Timeouts {
            request: engine.request_timeout,
            slow: engine.slow_request_timeout,
            health: engine.health_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_fabrics() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert_eq!(
            c.image(&c.chaincode.builder),
            "hyperledger/fabric-ccenv:2.5"
        );
        assert_eq!(
            c.image(&c.chaincode.golang.runtime),
            "hyperledger/fabric-baseos:2.5"
        );
        assert_eq!(
            c.image(&c.chaincode.node.runtime),
            "hyperledger/fabric-nodeenv:2.5"
        );
        assert_eq!(
            c.image(&c.chaincode.java.runtime),
            "hyperledger/fabric-javaenv:2.5"
        );
        assert_eq!(c.vm.docker.host_config.network_mode(), Some("host"));
        assert_eq!(c.vm.docker.host_config.memory(), Some(2147483648));
        assert_eq!(c.startup_timeout().unwrap(), Duration::from_secs(300));
        assert_eq!(c.logging_env()[0], "CORE_CHAINCODE_LOGGING_LEVEL=info");
        assert_eq!(c.logging_env()[1], "CORE_CHAINCODE_LOGGING_SHIM=warn");
        assert!(c.logging_env()[2]
            .starts_with("CORE_CHAINCODE_LOGGING_FORMAT=%{color}%{time:2006-01-02"));
        assert_eq!(
            (c.peer.id.as_str(), c.peer.network_id.as_str()),
            ("jdoe", "dev")
        );
    }

    #[test]
    fn a_host_config_the_engine_would_not_take_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.yaml");
        std::fs::write(
            &file,
            "vm:\n  docker:\n    hostConfig:\n      Memory: lots\n",
        )
        .unwrap();
        let error = Config::load_with_env(Some(&file), |_| None).unwrap_err();
        assert_eq!(
            crate::error_chain(&error),
            format!(
                "invalid vm.docker.hostConfig in {}: the engine API would not take it: invalid type: string \"lots\", expected i64",
                file.display()
            )
        );
    }

    #[test]
    fn swarm_needs_a_registry_whose_credentials_come_from_a_docker_config() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.cclaunch.engine.kind, EngineKind::Docker);
        assert!(c.registry().unwrap().is_none());
        let error =
            Config::load_with_env(None, env(&[("CCLAUNCH_ENGINE_KIND", "swarm")])).unwrap_err();
        assert!(matches!(error, Error::NoRegistry), "{error}");
        let error =
            Config::load_with_env(None, env(&[("CCLAUNCH_ENGINE_KIND", "k8s")])).unwrap_err();
        assert!(
            crate::error_chain(&error).contains("unknown variant `k8s`"),
            "{}",
            crate::error_chain(&error)
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        // "cc:s3cret" in base64.
        std::fs::write(
            &file,
            r#"{"auths": {"10.9.0.1:5000": {"auth": "Y2M6czNjcmV0"}}}"#,
        )
        .unwrap();
        let path = file.display().to_string();
        let c = Config::load_with_env(None, |key: &str| match key {
            "CCLAUNCH_ENGINE_KIND" => Some("swarm".into()),
            "CCLAUNCH_REGISTRY_ADDRESS" => Some("10.9.0.1:5000".into()),
            "CCLAUNCH_REGISTRY_CONFIG" => Some(path.clone()),
            _ => None,
        })
        .unwrap();
        let registry = c.registry().unwrap().expect("a registry");
        assert_eq!(
            (registry.username.as_str(), registry.password.as_str()),
            ("cc", "s3cret")
        );
        assert!(!format!("{registry:?}").contains("s3cret"));
        std::fs::write(&file, r#"{"auths": {"10.9.0.1:5000": {"auth": "!!"}}}"#).unwrap();
        let error = c.registry().unwrap_err();
        assert!(!crate::error_chain(&error).contains("!!"));
        assert!(
            crate::error_chain(&error).starts_with("cannot read registry credentials from"),
            "{}",
            crate::error_chain(&error)
        );
    }

    #[test]
    fn kubernetes_settings_have_defaults_env_overrides_and_checked_quantities() {
        let load = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load_with_env(None, move |key: &str| {
                pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
            })
        };
        let c = load(&[("CCLAUNCH_ENGINE_KIND", "kubernetes")]).unwrap();
        let k = &c.cclaunch.engine.kubernetes;
        assert_eq!(c.cclaunch.engine.kind, EngineKind::Kubernetes);
        assert_eq!((k.kubeconfig.as_str(), k.namespace.as_str()), ("", ""));
        assert!(k.host_network);
        assert_eq!(k.image_source, ImageSource::Node);
        assert_eq!(k.resources.limits.memory, "");

        let c = load(&[
            ("CCLAUNCH_ENGINE_KIND", "kubernetes"),
            (
                "CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG",
                "/etc/cc/kubeconfig",
            ),
            ("CCLAUNCH_ENGINE_KUBERNETES_NAMESPACE", "chaincode"),
            ("CCLAUNCH_ENGINE_KUBERNETES_HOSTNETWORK", "false"),
            ("CCLAUNCH_ENGINE_KUBERNETES_RESOURCES_LIMITS_MEMORY", "64Mi"),
            ("CCLAUNCH_ENGINE_KUBERNETES_RESOURCES_REQUESTS_CPU", "0.25"),
            ("CCLAUNCH_ENGINE_KUBERNETES_RESOURCES_LIMITS_CPU", "1"),
        ])
        .unwrap();
        let k = &c.cclaunch.engine.kubernetes;
        assert_eq!(k.kubeconfig, "/etc/cc/kubeconfig");
        assert_eq!(k.namespace, "chaincode");
        assert!(!k.host_network);
        assert_eq!(k.resources.limits.memory, "64Mi");
        assert_eq!(k.resources.requests.cpu, "0.25");
        assert_eq!(k.resources.limits.cpu, "1");

        let error = load(&[(
            "CCLAUNCH_ENGINE_KUBERNETES_RESOURCES_LIMITS_MEMORY",
            "64 MB",
        )])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid quantity \"64 MB\" for cclaunch.engine.kubernetes.resources.limits.memory: use Kubernetes' quantity syntax, as in 512Mi, 2Gi, 500m or 1"
        );
        let error = load(&[
            ("CCLAUNCH_ENGINE_KIND", "kubernetes"),
            ("CCLAUNCH_ENGINE_KUBERNETES_IMAGESOURCE", "registry"),
        ])
        .unwrap_err();
        assert!(matches!(error, Error::NoKubernetesRegistry), "{error}");
        let error = load(&[("CCLAUNCH_ENGINE_KUBERNETES_OWNER_NAME", "sidecar-0")]).unwrap_err();
        assert!(matches!(error, Error::HalfOwner), "{error}");
        let c = load(&[
            ("CCLAUNCH_ENGINE_KUBERNETES_OWNER_NAME", "sidecar-0"),
            (
                "CCLAUNCH_ENGINE_KUBERNETES_OWNER_UID",
                "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            ),
        ])
        .unwrap();
        assert_eq!(c.cclaunch.engine.kubernetes.owner.name, "sidecar-0");
        let c = load(&[
            (
                "CCLAUNCH_ENGINE_KUBERNETES_NODESELECTOR",
                "kubernetes.io/os=linux, disk=ssd",
            ),
            (
                "CCLAUNCH_ENGINE_KUBERNETES_TOLERATIONS",
                "dedicated=chaincode:NoSchedule",
            ),
            ("CCLAUNCH_ENGINE_KUBERNETES_IMAGEPULLSECRETS", "regcred"),
        ])
        .unwrap();
        let options = runtime::kubernetes::KubernetesOptions::from(&c.cclaunch.engine);
        assert_eq!(
            options.node_selector,
            std::collections::BTreeMap::from([
                ("disk".to_string(), "ssd".to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string())
            ])
        );
        assert_eq!(options.tolerations.len(), 1);
        assert_eq!(options.image_pull_secrets[0].name, "regcred");
        let error = load(&[("CCLAUNCH_ENGINE_KUBERNETES_TOLERATIONS", "spot:Never")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid cclaunch.engine.kubernetes.tolerations: \"spot:Never\": the effect \"Never\" is none of NoSchedule, PreferNoSchedule, NoExecute"
        );
        let error = load(&[("CCLAUNCH_ENGINE_KUBERNETES_NODESELECTOR", "ssd")]).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "invalid cclaunch.engine.kubernetes.nodeSelector: \"ssd\" is not key=value"
            ),
            "{error}"
        );
        for good in ["1", "0.5", "500m", "2Gi", "128974848", "1e3", "129M"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", ".", "Gi", "1.2.3", "5 Gi", "1GB", "-1", "1e"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    /// A Pod spec's own forms in the file: a selector map, toleration objects.
    #[test]
    fn placement_reads_a_pod_specs_forms_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.yaml");
        let load = |kubernetes: &str| {
            std::fs::write(
                &file,
                format!("cclaunch:\n  engine:\n    kubernetes:\n{kubernetes}"),
            )
            .unwrap();
            Config::load_with_env(Some(&file), |_| None)
        };
        let c = load(
            "      nodeSelector:\n        disk: ssd\n        kubernetes.io/os: linux\n      tolerations:\n        - key: dedicated\n          operator: Equal\n          value: chaincode\n          effect: NoSchedule\n        - key: spot\n          operator: Exists\n        - example.com/gpu:NoExecute\n",
        )
        .unwrap();
        let k = &c.cclaunch.engine.kubernetes;
        assert_eq!(k.node_selector, ["disk=ssd", "kubernetes.io/os=linux"]);
        assert_eq!(
            k.tolerations,
            [
                "dedicated=chaincode:NoSchedule",
                "spot",
                "example.com/gpu:NoExecute"
            ]
        );
        let options = runtime::kubernetes::KubernetesOptions::from(&c.cclaunch.engine);
        let spot = &options.tolerations[1];
        assert_eq!(
            (
                spot.operator.as_deref(),
                spot.value.as_deref(),
                spot.effect.as_deref()
            ),
            (Some("Exists"), None, None)
        );
        // No operator is Equal, as in Kubernetes.
        let c =
            load("      tolerations:\n        - key: dedicated\n          value: cc\n").unwrap();
        assert_eq!(c.cclaunch.engine.kubernetes.tolerations, ["dedicated=cc"]);
        // The variables replace a map or a list from the file whole.
        std::fs::write(
            &file,
            "cclaunch:\n  engine:\n    kubernetes:\n      nodeSelector:\n        disk: ssd\n      tolerations:\n        - key: dedicated\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&file), |key| match key {
            "CCLAUNCH_ENGINE_KUBERNETES_NODESELECTOR" => Some("zone=b".into()),
            "CCLAUNCH_ENGINE_KUBERNETES_TOLERATIONS" => Some("spot:NoSchedule".into()),
            _ => None,
        })
        .unwrap();
        let k = &c.cclaunch.engine.kubernetes;
        assert_eq!(
            (k.node_selector.as_slice(), k.tolerations.as_slice()),
            (
                ["zone=b".to_string()].as_slice(),
                ["spot:NoSchedule".to_string()].as_slice()
            )
        );
        for (bad, says) in [
            (
                "      tolerations:\n        - key: spot\n          operator: Exists\n          value: x\n",
                "operator Exists and a value",
            ),
            (
                "      tolerations:\n        - key: spot\n          operator: Lt\n",
                "not Equal or Exists",
            ),
            (
                "      tolerations:\n        - key: spot\n          tolerationSeconds: 5\n",
                "objects with key, operator, value, effect",
            ),
            (
                "      tolerations:\n        - key: \"\"\n          operator: Exists\n",
                "toleration object has no key",
            ),
            ("      nodeSelector:\n        disk: [a]\n", "a map of labels"),
            (
                "      nodeSelector:\n        Disk_: ssd\n",
                "invalid cclaunch.engine.kubernetes.nodeSelector",
            ),
        ] {
            let error = load(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.yaml");
        std::fs::write(
            &file,
            "peer:\n  id: peer0\nchaincode:\n  builder: local/ccenv:1\n  logging:\n    level: DEBUG\nvm:\n  docker:\n    hostConfig:\n      NetworkMode: bridge\n      Dns:\n",
        )
        .unwrap();
        let env = |key: &str| match key {
            "CORE_PEER_NETWORKID" => Some("net9".to_string()),
            "CORE_CHAINCODE_PULL" => Some("true".to_string()),
            "CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES" => Some("1024".to_string()),
            _ => None,
        };
        let c = Config::load_with_env(Some(&file), env).unwrap();
        assert_eq!(c.peer.id, "peer0");
        assert_eq!(c.peer.network_id, "net9");
        assert!(c.chaincode.pull);
        assert_eq!(c.chaincode.builder, "local/ccenv:1");
        assert_eq!(c.logging_env()[0], "CORE_CHAINCODE_LOGGING_LEVEL=debug");
        assert_eq!(c.vm.docker.host_config.network_mode(), Some("bridge"));
        assert_eq!(c.cclaunch.package.max_unpacked_bytes, 1024);
    }

    #[test]
    fn package_dirs_are_none_by_default_and_a_list_or_a_comma_separated_string() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert!(c.cclaunch.api.package_dirs.is_empty());
        let env =
            |key: &str| (key == "CCLAUNCH_API_PACKAGEDIRS").then(|| "/srv/a, /srv/b".to_string());
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.cclaunch.api.package_dirs, ["/srv/a", "/srv/b"]);
    }

    #[test]
    fn builder_types_are_a_list_or_a_comma_separated_string() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert_eq!(
            c.cclaunch.builder.types,
            ["golang", "node", "java", "ccaas"]
        );
        let env = |key: &str| (key == "CCLAUNCH_BUILDER_TYPES").then(|| "node, ccaas".to_string());
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.cclaunch.builder.types, ["node", "ccaas"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.yaml");
        std::fs::write(
            &file,
            "cclaunch:\n  builder:\n    types: [java]\n    ccaas:\n      templateValues: {peername: peer0, port: 9999}\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&file), no_env).unwrap();
        assert_eq!(c.cclaunch.builder.types, ["java"]);
        assert_eq!(
            c.cclaunch.builder.ccaas.template_values.get("port"),
            Some(&serde_json::json!(9999))
        );
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let env = |key: &str| (key == "CORE_CHAINCODE_STARTUPTIMEOUT").then(|| "soon".to_string());
        let err = Config::load_with_env(None, env).unwrap_err();
        assert!(
            err.to_string().contains("chaincode.startuptimeout"),
            "{err}"
        );
        let env = |key: &str| (key == "CORE_CHAINCODE_LOGGING_LEVEL").then(|| "loud".to_string());
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.logging_env()[0], "CORE_CHAINCODE_LOGGING_LEVEL=info");
    }

    #[test]
    fn api_and_engine_limits_are_checked_where_they_are_read() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert_eq!(c.cclaunch.api.header_timeout, Duration::from_secs(10));
        assert_eq!(c.cclaunch.api.max_connections, 128);
        assert_eq!(c.cclaunch.engine.request_timeout, Duration::from_secs(15));
        let env = |key: &str| match key {
            "CCLAUNCH_API_IDLETIMEOUT" => Some("1m30s".to_string()),
            "CCLAUNCH_ENGINE_HEALTHTIMEOUT" => Some("500ms".to_string()),
            _ => None,
        };
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.cclaunch.api.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.cclaunch.engine.health_timeout, Duration::from_millis(500));
        for (key, value, said) in [
            (
                "CCLAUNCH_API_HEADERTIMEOUT",
                "10",
                "cclaunch.api.headerTimeout: invalid duration \"10\"",
            ),
            (
                "CCLAUNCH_ENGINE_REQUESTTIMEOUT",
                "0s",
                "cclaunch.engine.requestTimeout: invalid duration \"0s\": use a number above zero",
            ),
            (
                "CCLAUNCH_API_MAXCONNECTIONS",
                "none",
                "cclaunch.api.maxConnections: \"none\" is not a count above zero",
            ),
        ] {
            let env = |k: &str| (k == key).then(|| value.to_string());
            let err = Config::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains(said), "{key}={value}: {err}");
        }
    }

    #[test]
    fn limits_have_defaults_and_zero_timeouts_are_refused() {
        let c = Config::load_with_env(None, no_env).unwrap();
        assert_eq!(c.build_timeout().unwrap(), Duration::from_secs(600));
        assert_eq!(c.upload_idle_timeout().unwrap(), Duration::from_secs(30));
        assert_eq!(c.output_burst().unwrap(), Duration::from_secs(30));
        assert_eq!(c.cclaunch.package.max_package_bytes, 100 << 20);
        assert_eq!(c.cclaunch.package.max_concurrent_uploads, 4);
        assert_eq!(c.cclaunch.output.max_log_streams, 128);
        for (key, name) in [
            ("CCLAUNCH_BUILD_TIMEOUT", "cclaunch.build.timeout"),
            (
                "CCLAUNCH_PACKAGE_UPLOADIDLETIMEOUT",
                "cclaunch.package.uploadIdleTimeout",
            ),
            ("CORE_CHAINCODE_STARTUPTIMEOUT", "chaincode.startuptimeout"),
        ] {
            let env = |k: &str| (k == key).then(|| "0s".to_string());
            let err = Config::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        // Zero would refuse everything; only the rates take 0 (no limit).
        for (key, name) in [
            (
                "CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES",
                "cclaunch.package.maxUnpackedBytes",
            ),
            (
                "CCLAUNCH_PACKAGE_MAXPACKAGEBYTES",
                "cclaunch.package.maxPackageBytes",
            ),
            (
                "CCLAUNCH_PACKAGE_MAXCONCURRENTUPLOADS",
                "cclaunch.package.maxConcurrentUploads",
            ),
            (
                "CCLAUNCH_OUTPUT_MAXLINEBYTES",
                "cclaunch.output.maxLineBytes",
            ),
            (
                "CCLAUNCH_OUTPUT_MAXLOGSTREAMS",
                "cclaunch.output.maxLogStreams",
            ),
        ] {
            let env = |k: &str| (k == key).then(|| "0".to_string());
            let err = Config::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        for key in [
            "CCLAUNCH_OUTPUT_MAXLINESPERSECOND",
            "CCLAUNCH_OUTPUT_MAXBYTESPERSECOND",
        ] {
            let env = |k: &str| (k == key).then(|| "0".to_string());
            assert!(Config::load_with_env(None, env).is_ok(), "{key}=0");
        }
        let env = |k: &str| (k == "CCLAUNCH_OUTPUT_BURST").then(|| "lots".to_string());
        let err = Config::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("cclaunch.output.burst"), "{err}");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
    }
}
