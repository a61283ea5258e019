//! The Kubernetes runner (runtime::kubernetes) driven through cclaunch's
//! Launcher on the real single-node Kubernetes 1.20.2 of tests/cluster:
//! a chaincode image built by the Docker engine (the busybox `shenv`
//! runtime) and imported into the lab's containerd starts as a Pod; its TLS
//! files read back byte for byte as the Docker engine's tarball puts them
//! (same paths, mode 0644, same owner); its output is mirrored into the
//! `peer.chaincode.<name>` logger; Wait gives its exit code, and a memory
//! limit an OOMKilled error, and an image the node lacks ErrImageNeverPull;
//! Stop leaves no Pod and no Secret; List and gc see only this peer's Pods;
//! a new launcher, and a `cclaunch serve` stopped and started again (as the
//! lab's service account), resume the mirror with no line lost or repeated;
//! the Go sample (Fabric's golang build) and a Node chaincode on the real
//! fabric-shim reach a devpeer on the node's loopback, the Node one
//! registering over mutual TLS and answering invokes (its dependencies are
//! installed by npm in the host's nodeenv first, as in swarm_chaincode.rs);
//! deleting the owner Pod of configuration deletes every chaincode Pod and
//! Secret; the CLI on the engine takes the Kubernetes road; an API server that
//! stops answering (frozen with SIGSTOP) is a timeout naming the call, one
//! killed (SIGKILL) an error naming it, and once it is back the mirror goes
//! on with no line lost or repeated; a SIGKILLed `cclaunch serve` is resumed
//! with no line lost; node selector, tolerations and pull Secrets reach the
//! Pod, and a selector no node matches is a clear Wait error; the
//! engine works with exactly the Role docs/KUBERNETES.md gives, which reads
//! no Secret.
//!
//! Runs under tests/cluster/with-k8s.sh (`make test-k8s`); elsewhere each
//! test says it is skipped.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cclaunch::launch::{Selection, StartRequest, TlsMaterial};
use cclaunch::launcher::Launcher;
use cclaunch::package::{self, Limits, Metadata, Package};
use cclaunch::runtime::docker::Docker;
use cclaunch::runtime::kubernetes::{names, Kubernetes};
use cclaunch::runtime::Engine;
use common::k8s::Cluster;
use common::{captured, eventually, SHENV};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;

/// How long a Pod may take to start and end on a busy 2-core machine.
const POD_LIMIT: Duration = Duration::from_secs(120);

/// A launcher of one peer on the lab (built on the host's Docker engine,
/// run as Pods), its test directory, and the guard that removes what it
/// made: Pods and Secrets by its peer label (kubectl, so it also works
/// while panicking), containers, images and state by `common::cleanup`.
struct Peer {
    lab: Cluster,
    id: String,
    launcher: Arc<Launcher>,
    dir: tempfile::TempDir,
}

impl Peer {
    /// A launcher as the CLI road makes it for `engine.kind: kubernetes`,
    /// with `overrides` (environment variables) on top. Call it inside
    /// `Cluster::block_on`.
    async fn new(lab: &Cluster, test: &str, overrides: &[(&str, &str)]) -> Peer {
        let id = common::unique_peer(test).to_lowercase();
        let kubeconfig = lab.kubeconfig.display().to_string();
        // The first of a key wins: the overrides come first.
        let mut env = overrides.to_vec();
        env.extend_from_slice(&[
            ("CORE_CHAINCODE_NODE_RUNTIME", SHENV),
            ("CCLAUNCH_ENGINE_KIND", "kubernetes"),
            ("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", kubeconfig.as_str()),
            (
                "CCLAUNCH_ENGINE_KUBERNETES_NAMESPACE",
                lab.namespace.as_str(),
            ),
        ]);
        let config = common::config(&id, &env);
        let docker = Arc::new(
            Docker::connect(&config.vm.endpoint)
                .await
                .expect("engine is up (scripts/ensure-docker.sh)")
                .with_timeouts((&config.cclaunch.engine).into()),
        );
        assert!(
            docker.image_labels(SHENV).await.expect("inspect").is_some(),
            "test image {SHENV} missing: run testdata/images/make-images.sh busybox shenv"
        );
        let runner = Kubernetes::connect((&config.cclaunch.engine).into())
            .await
            .expect("a client of the lab");
        assert_eq!(runner.namespace(), lab.namespace);
        let launcher = Arc::new(Launcher::with_runner(docker, Arc::new(runner), config));
        Peer {
            lab: lab.clone(),
            id,
            launcher,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A node package for the `shenv` runtime whose start.sh is `script`,
    /// built by the Docker engine and imported into the lab.
    async fn chaincode(&self, label: &str, script: &str) -> Package {
        let (package, image) = self.built(label, script).await;
        let lab = self.lab.clone();
        tokio::task::spawn_blocking(move || lab.images(&[&image]))
            .await
            .expect("import the image");
        package
    }

    /// A chaincode printing `tick 1` ... `tick N` a tenth of a second apart,
    /// then `done`.
    async fn ticker(&self, n: u32) -> Package {
        let script = format!(
            "i=0\nwhile [ $i -lt {n} ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done\necho done\n"
        );
        self.chaincode("ticker", &script).await
    }

    /// [`Peer::ticker`] started through the launcher, once its tenth line
    /// is mirrored: the package and the logger its lines go to.
    async fn ticking(&self, n: u32, captured: &common::Captured) -> (Package, String) {
        let package = self.ticker(n).await;
        let started = self
            .launcher
            .start(request(&package.id, None))
            .await
            .expect("start");
        let target = format!("peer.chaincode.{}", started.container);
        assert!(
            eventually(POD_LIMIT, || captured
                .for_target(&target)
                .contains(&"tick 10".to_string()))
            .await,
            "{:?}",
            captured.for_target(&target)
        );
        (package, target)
    }

    /// Starts `package` (with `tls`) and waits for its exit code and until
    /// `line` is mirrored; the container's name and the code.
    async fn run_to_exit(
        &self,
        package: &Package,
        tls: Option<TlsMaterial>,
        line: &str,
        captured: &common::Captured,
    ) -> (String, i64) {
        let started = self
            .launcher
            .start(request(&package.id, tls))
            .await
            .expect("start");
        let code = tokio::time::timeout(POD_LIMIT, self.launcher.wait(&package.id))
            .await
            .expect("wait within the limit")
            .expect("wait");
        let target = format!("peer.chaincode.{}", started.container);
        assert!(
            eventually(Duration::from_secs(30), || captured
                .for_target(&target)
                .contains(&line.to_string()))
            .await,
            "{line:?} not mirrored: {:?}",
            captured.for_target(&target)
        );
        (started.container, code)
    }

    /// `package` built by the Docker engine and imported into the lab.
    async fn import(&self, package: &Package) {
        let built = self
            .launcher
            .build(package, &|_: &str| {})
            .await
            .expect("build on the Docker engine");
        let lab = self.lab.clone();
        let image = format!("{}:latest", built.image);
        let t = Instant::now();
        tokio::task::spawn_blocking(move || lab.images(&[&image]))
            .await
            .expect("import the image");
        eprintln!("{}: imported in {:.1?}", package.id, t.elapsed());
    }

    /// As [`Peer::chaincode`], not imported into the lab: the package and
    /// its image (`name:latest`).
    async fn built(&self, label: &str, script: &str) -> (Package, String) {
        let code = self.dir.path().join(format!("{label}-src"));
        std::fs::create_dir_all(&code).expect("mkdir");
        std::fs::write(code.join("start.sh"), script).expect("write start.sh");
        let file = self.dir.path().join(format!("{label}.tar.gz"));
        let metadata = Metadata {
            path: String::new(),
            kind: "node".to_string(),
            label: label.to_string(),
        };
        package::write(&metadata, &code, &file).expect("write package");
        let package = Package::open(&file, Limits::default()).expect("package is valid");
        let built = self
            .launcher
            .build(&package, &|_: &str| {})
            .await
            .expect("build on the Docker engine");
        (package, format!("{}:latest", built.image))
    }

    /// Pods and Secrets of this peer in the lab, by name.
    fn objects(&self) -> Vec<String> {
        self.lab.peer_objects(&self.id)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.lab.delete_peer_objects(&self.id);
        common::cleanup(&self.id);
    }
}

fn request(package_id: &str, tls: Option<TlsMaterial>) -> StartRequest {
    StartRequest {
        tls,
        ..common::request(package_id)
    }
}

/// What a chaincode says of itself: its args, Fabric's env, and each TLS
/// file's path, mode, owner, size and bytes (base64), each line prefixed so
/// that it can be picked from the mirrored output.
const SELF_REPORT: &str = r#"echo "report args: $*"
env | grep '^CORE_' | sort | sed 's/^/report env: /'
for f in client.key client.crt client_pem.key client_pem.crt peer.crt; do
  f=/etc/hyperledger/fabric/$f
  stat -c 'report file: %n %a %u %g %s' $f
  base64 $f | sed "s|^|report $f: |"
done
echo "report end"
"#;

/// The report lines a mirror logged, in order.
fn report(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with("report "))
        .cloned()
        .collect()
}

#[test]
fn a_chaincode_runs_as_a_pod_with_dockers_tls_files_args_and_env_and_its_output_mirrored() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let tls = common::tls_material();
        let peer = Peer::new(&lab2, "tls", &[]).await;
        let package = peer.chaincode("report", SELF_REPORT).await;

        let t = Instant::now();
        let started = peer
            .launcher
            .start(request(&package.id, Some(tls.clone())))
            .await
            .expect("start as a pod");
        let start_ms = t.elapsed().as_millis();
        let code = tokio::time::timeout(POD_LIMIT, peer.launcher.wait(&package.id))
            .await
            .expect("wait within the limit")
            .expect("wait");
        let run_ms = t.elapsed().as_millis();
        assert_eq!(code, 0);
        let target = format!("peer.chaincode.{}", started.container);
        assert!(
            eventually(Duration::from_secs(30), || captured
                .for_target(&target)
                .contains(&"report end".to_string()))
            .await,
            "mirrored: {:?}",
            captured.for_target(&target)
        );
        let on_k8s = report(&captured.for_target(&target));
        eprintln!("k8s start {start_ms} ms, start to exit {run_ms} ms");

        // The Pod as the design has it.
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        let pod_name = names::pod_name(&started.container);
        let pod = pods.get(&pod_name).await.expect("the pod");
        let spec = pod.spec.clone().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.host_network, Some(true));
        let annotations = pod.metadata.annotations.clone().expect("annotations");
        assert_eq!(annotations[names::CONTAINER_NAME], started.container);
        assert_eq!(annotations["org.cclaunch.package-id"], package.id);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &lab2.namespace);
        let secret = secrets.get(&pod_name).await.expect("the secret");
        let owner = &secret.metadata.owner_references.expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), Some(owner.uid.as_str())),
            ("Pod", pod.metadata.uid.as_deref())
        );

        // The same package and TLS material on the Docker engine.
        let env = common::Env::new("tls-docker", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
        let docker_package = env.package("node", "report", "", &{
            let code = env.dir.path().join("report-src");
            std::fs::create_dir_all(&code).unwrap();
            std::fs::write(code.join("start.sh"), SELF_REPORT).unwrap();
            code
        });
        env.launcher
            .build(&docker_package, &|_: &str| {})
            .await
            .expect("build");
        let on_docker_started = env
            .launcher
            .start(request(&docker_package.id, Some(tls)))
            .await
            .expect("start on docker");
        assert_eq!(
            env.launcher.wait(&docker_package.id).await.expect("wait"),
            0
        );
        let docker_target = format!("peer.chaincode.{}", on_docker_started.container);
        assert!(
            eventually(Duration::from_secs(30), || captured
                .for_target(&docker_target)
                .contains(&"report end".to_string()))
            .await
        );
        let on_docker = report(&captured.for_target(&docker_target));

        // Files: byte for byte, mode 0644, root's; args and Fabric's env:
        // the same but for the ids in them.
        let files = |report: &[String]| -> Vec<String> {
            report
                .iter()
                .filter(|l| l.starts_with("report file: ") || l.starts_with("report /"))
                .cloned()
                .collect()
        };
        assert_eq!(files(&on_k8s), files(&on_docker));
        let stats = on_k8s.iter().filter(|l| l.starts_with("report file: "));
        assert_eq!(stats.count(), 5, "{on_k8s:?}");
        for name in [
            "client.key",
            "client.crt",
            "client_pem.key",
            "client_pem.crt",
            "peer.crt",
        ] {
            let line = format!("report file: /etc/hyperledger/fabric/{name} 644 0 0 ");
            assert!(
                on_k8s.iter().any(|l| l.starts_with(&line)),
                "{name}: {on_k8s:?}"
            );
        }
        let normalised = |report: &[String], id: &str, peer: &str| -> Vec<String> {
            report
                .iter()
                .filter(|l| l.starts_with("report env: ") || l.starts_with("report args: "))
                .map(|l| l.replace(id, "<ID>").replace(peer, "<PEER>"))
                .collect()
        };
        let k8s_env = normalised(&on_k8s, &package.id, &peer.id);
        assert_eq!(
            k8s_env,
            normalised(&on_docker, &docker_package.id, &env.peer),
            "args and CORE_ env differ"
        );
        assert!(
            k8s_env.contains(&"report env: CORE_PEER_TLS_ENABLED=true".to_string()),
            "{k8s_env:?}"
        );

        peer.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}

#[test]
fn wait_gives_the_exit_code_and_a_memory_limit_an_oomkilled_error() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let peer = Peer::new(
            &lab2,
            "oom",
            &[("CCLAUNCH_ENGINE_KUBERNETES_RESOURCES_LIMITS_MEMORY", "16Mi")],
        )
        .await;
        let exits = peer.chaincode("exit3", "echo bye\nexit 3\n").await;
        peer.launcher
            .start(request(&exits.id, None))
            .await
            .expect("start");
        let code = tokio::time::timeout(POD_LIMIT, peer.launcher.wait(&exits.id))
            .await
            .expect("wait within the limit")
            .expect("wait");
        assert_eq!(code, 3);

        // dd fills a 64 MiB buffer; the limit is 16 MiB. It starts 2 s in
        // and the shell outlives it by a second, so the lab's containerd
        // watches the cgroup before the OOM and sees it before the shim
        // exits (k8s_lab.rs: it can miss it otherwise).
        let hog = peer
            .chaincode(
                "hog",
                "sleep 2\ndd if=/dev/zero of=/dev/null bs=64M count=1\ncode=$?\nsleep 1\nexit $code\n",
            )
            .await;
        let started = peer
            .launcher
            .start(request(&hog.id, None))
            .await
            .expect("start");
        let error = tokio::time::timeout(POD_LIMIT, peer.launcher.wait(&hog.id))
            .await
            .expect("wait within the limit")
            .expect_err("an OOM error");
        let text = cclaunch::error_chain(&error);
        let oom_text = text.clone();
        assert!(
            text.contains("OOMKilled")
                && text.contains("exit code 137")
                && text.contains(&started.container),
            "{text}"
        );
        // An image the node does not have (never pulled): an error at once.
        let (absent, _) = peer.built("absent", "echo never\n").await;
        peer.launcher
            .start(request(&absent.id, None))
            .await
            .expect("start");
        let error = tokio::time::timeout(POD_LIMIT, peer.launcher.wait(&absent.id))
            .await
            .expect("wait within the limit")
            .expect_err("an image error");
        let text = cclaunch::error_chain(&error);
        assert!(
            text.contains("ErrImageNeverPull") && text.contains("did not run"),
            "{text}"
        );
        eprintln!("wait errors: OOM: {oom_text}; absent image: {text}");
        for id in [&exits.id, &hog.id, &absent.id] {
            peer.launcher.stop(id).await.expect("stop");
        }
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}

/// A line with no end for megabytes (the kubelet joins the runtime's 16 KiB
/// pieces into one line) is read and mirrored in bounded pieces: every byte
/// arrives, no piece over `cclaunch.output.maxLineBytes`, and the next line
/// follows on its own.
#[test]
fn a_line_of_megabytes_is_mirrored_in_bounded_pieces() {
    const LONG: usize = 3 << 20;
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let captured = captured();
    let lab2 = lab.clone();
    lab.block_on(async move {
        let peer = Peer::new(&lab2, "longline", &[]).await;
        let script = format!("head -c {LONG} /dev/zero | tr '\\0' x\necho\necho after\n");
        let package = peer.chaincode("longline", &script).await;
        let (container, code) = peer.run_to_exit(&package, None, "after", &captured).await;
        assert_eq!(code, 0);
        let lines = captured.for_target(&format!("peer.chaincode.{container}"));
        let max = peer.launcher.config().cclaunch.output.max_line_bytes;
        let pieces: Vec<&String> = lines.iter().filter(|l| l.starts_with('x')).collect();
        for piece in &pieces {
            let odd = piece.find(|c| c != 'x');
            assert!(
                piece.len() <= max && odd.is_none(),
                "a piece of {} bytes, not x at {odd:?}: {:?}",
                piece.len(),
                odd.map(|i| &piece[i.saturating_sub(10)..(i + 60).min(piece.len())])
            );
        }
        assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), LONG);
        assert_eq!(pieces.len(), LONG.div_ceil(max));
        let last_piece = lines.iter().rposition(|l| l.starts_with('x'));
        let after = lines.iter().position(|l| l == "after");
        assert!(
            after > last_piece,
            "{:?}",
            &lines[lines.len().saturating_sub(3)..]
        );
    });
}

#[test]
fn stop_leaves_no_pod_or_secret_and_list_and_gc_see_only_this_peer() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        // Peer b as the lab's service account (its Role, in this namespace
        // only), not the cluster admin.
        let sa = lab2.sa_kubeconfig.display().to_string();
        let (a, b) = (
            Peer::new(&lab2, "scope-a", &[]).await,
            Peer::new(
                &lab2,
                "scope-b",
                &[("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", sa.as_str())],
            )
            .await,
        );
        let script = "echo up\nexec sleep 600\n";
        let (a1, a2, b1) = (
            a.chaincode("one", script).await,
            a.chaincode("two", script).await,
            b.chaincode("one", script).await,
        );
        let tls = common::tls_material();
        let mut containers = Vec::new();
        for (peer, package) in [(&a, &a1), (&a, &a2), (&b, &b1)] {
            let started = peer
                .launcher
                .start(request(&package.id, Some(tls.clone())))
                .await
                .expect("start");
            containers.push(started.container);
        }
        for container in &containers {
            let target = format!("peer.chaincode.{container}");
            assert!(
                eventually(POD_LIMIT, || captured
                    .for_target(&target)
                    .contains(&"up".to_string()))
                .await,
                "{container} mirrored nothing"
            );
        }
        let listed = |launcher: Arc<Launcher>| async move {
            let mut names: Vec<(String, bool)> = launcher
                .list()
                .await
                .expect("list")
                .into_iter()
                .map(|c| (c.name, c.running))
                .collect();
            names.sort();
            names
        };
        let mut both = vec![(containers[0].clone(), true), (containers[1].clone(), true)];
        both.sort();
        assert_eq!(listed(a.launcher.clone()).await, both);
        assert_eq!(
            listed(b.launcher.clone()).await,
            [(containers[2].clone(), true)]
        );
        assert_eq!(a.objects().len(), 4, "{:?}", a.objects());

        // Stop: the Pod goes, then its Secret; a running chaincode ends
        // within its grace period.
        let t = Instant::now();
        a.launcher.stop(&a1.id).await.expect("stop");
        let stop_ms = t.elapsed().as_millis();
        let pod = names::pod_name(&containers[0]);
        let left = a.objects();
        assert!(!left.iter().any(|o| o.ends_with(&pod)), "{left:?}");
        assert_eq!(left.len(), 2, "{left:?}");
        eprintln!("stop of a running chaincode pod: {stop_ms} ms");

        // gc: all of this peer's chaincode but none of the other's.
        let collected = a
            .launcher
            .gc(&Selection::AllBut(Vec::new()))
            .await
            .expect("gc");
        assert_eq!(collected.containers, [containers[1].clone()]);
        assert_eq!(a.objects(), Vec::<String>::new());
        assert_eq!(b.objects().len(), 2, "{:?}", b.objects());
        assert_eq!(
            listed(b.launcher.clone()).await,
            [(containers[2].clone(), true)]
        );
        b.launcher.stop(&b1.id).await.expect("stop");
        assert_eq!(b.objects(), Vec::<String>::new());
        let health = b.launcher.health().await.expect("health");
        assert!(health.version.starts_with("v1.20"), "{health:?}");
    });
}

#[test]
fn a_new_launcher_resumes_the_mirror_with_no_line_lost_or_repeated() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let first = Peer::new(&lab2, "resume", &[]).await;
        let (package, target) = first.ticking(80, &captured).await;
        // The sidecar goes away (its checkpoint written) while the
        // chaincode goes on; a new one resumes.
        first.launcher.stop_mirrors().await;
        let at_stop = captured.for_target(&target).len();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let config = first.launcher.config().clone();
        let docker = Arc::new(
            Docker::connect(&config.vm.endpoint)
                .await
                .expect("engine")
                .with_timeouts((&config.cclaunch.engine).into()),
        );
        let runner = Kubernetes::connect((&config.cclaunch.engine).into())
            .await
            .expect("client");
        let second = Launcher::with_runner(docker, Arc::new(runner), config);
        let resumed = second.resume().await.expect("resume");
        assert_eq!(resumed.len(), 1, "{resumed:?}");
        assert!(
            eventually(POD_LIMIT, || captured
                .for_target(&target)
                .contains(&"done".to_string()))
            .await,
            "{:?}",
            captured.for_target(&target)
        );
        let mut expected: Vec<String> = (1..=80).map(|i| format!("tick {i}")).collect();
        expected.push("done".to_string());
        let lines = captured.for_target(&target);
        assert_eq!(
            lines, expected,
            "mirrored {at_stop} lines before the restart"
        );
        eprintln!(
            "resume: {at_stop} lines before the restart, {} after",
            lines.len() - at_stop
        );
        second.stop(&package.id).await.expect("stop");
        second.stop_mirrors().await;
        assert_eq!(first.objects(), Vec::<String>::new());
    });
}

/// The Role docs/KUBERNETES.md gives the sidecar, as YAML for a service
/// account of its own (`name`) in `namespace`.
fn least_privilege(name: &str, namespace: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}, namespace: {namespace}}}
rules:
- {{apiGroups: [""], resources: [pods],     verbs: [create, get, list, watch, delete]}}
- {{apiGroups: [""], resources: [pods/log], verbs: [get]}}
- {{apiGroups: [""], resources: [secrets],  verbs: [create, delete]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}
subjects:
- {{kind: ServiceAccount, name: {name}, namespace: {namespace}}}
"#
    )
}

#[test]
fn the_engine_needs_only_the_role_docs_kubernetes_md_gives_and_never_reads_a_secret() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let account = common::unique_peer("rbac").to_lowercase();
    let manifest = dir.path().join("role.yaml");
    std::fs::write(&manifest, least_privilege(&account, &lab.namespace)).expect("write");
    let kubectl = |args: &[&str]| -> String {
        let out = lab.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    kubectl(&["apply", "-f", &manifest.display().to_string()]);
    // 1.20 makes a token Secret for every service account.
    let deadline = Instant::now() + Duration::from_secs(60);
    let secret = loop {
        let name = kubectl(&[
            "-n",
            &lab.namespace,
            "get",
            "serviceaccount",
            &account,
            "-o",
            "jsonpath={.secrets[0].name}",
        ]);
        if !name.is_empty() {
            break name;
        }
        assert!(Instant::now() < deadline, "no token for {account}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let token = kubectl(&[
        "-n",
        &lab.namespace,
        "get",
        "secret",
        &secret,
        "-o",
        "jsonpath={.data.token}",
    ]);
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64 token");
    let token = String::from_utf8(token).expect("token text");
    // The lab's service-account kubeconfig, with this account's token.
    let kubeconfig: String = std::fs::read_to_string(&lab.sa_kubeconfig)
        .expect("read the lab's kubeconfig")
        .lines()
        .map(|line| match line.trim_start().strip_prefix("token: ") {
            Some(_) => format!("    token: {token}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    let path = dir.path().join("least.kubeconfig");
    std::fs::write(&path, kubeconfig).expect("write kubeconfig");

    let (lab2, path2) = (lab.clone(), path.clone());
    lab.block_on(async move {
        let captured = captured();
        let kubeconfig = path2.display().to_string();
        let peer = Peer::new(
            &lab2,
            "rbac",
            &[("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", kubeconfig.as_str())],
        )
        .await;
        let health = peer.launcher.health().await.expect("health");
        assert!(health.version.starts_with("v1.20"), "{health:?}");
        let package = peer.chaincode("least", "echo up\nexit 5\n").await;
        let (_, code) = peer
            .run_to_exit(&package, Some(common::tls_material()), "up", &captured)
            .await;
        assert_eq!(code, 5);
        let mut logs = peer
            .launcher
            .logs(&package.id, &cclaunch::runtime::LogQuery::all(false))
            .await
            .expect("logs");
        let mut text = Vec::new();
        use futures_util::StreamExt;
        while let Some(frame) = logs.next().await {
            match frame.expect("log frame") {
                cclaunch::runtime::Output::Stdout(b) | cclaunch::runtime::Output::Stderr(b) => {
                    text.extend_from_slice(&b)
                }
            }
        }
        assert_eq!(String::from_utf8_lossy(&text), "up\n");
        let listed = peer.launcher.list().await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].exit_code, Some(5));
        peer.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(peer.objects(), Vec::<String>::new());

        // And it cannot read a Secret, nor list Pods elsewhere.
        let file = kube::config::Kubeconfig::read_from(&path2).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &lab2.namespace);
        match secrets.list(&Default::default()).await {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("listing secrets: {other:?}"),
        }
        let elsewhere: Api<Pod> = Api::namespaced(client, "kube-system");
        match elsewhere.list(&Default::default()).await {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("listing pods in kube-system: {other:?}"),
        }
    });
    kubectl(&[
        "-n",
        &lab.namespace,
        "delete",
        "rolebinding,role,serviceaccount",
        &account,
        "--wait=false",
    ]);
}

#[test]
fn the_cli_on_the_engine_takes_the_kubernetes_road() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let peer = common::unique_peer("cli").to_lowercase();
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = |args: &[&str], extra: &[(&str, &str)]| -> (Option<i32>, String, String) {
        let mut command = lab.command(env!("CARGO_BIN_EXE_cclaunch"));
        command
            .args(args)
            .env("CORE_VM_ENDPOINT", common::endpoint())
            .env("CORE_PEER_ID", &peer)
            .env("CORE_PEER_NETWORKID", "test")
            .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
            .env("CCLAUNCH_STATEDIR", common::state_dir(&peer))
            .env("CCLAUNCH_ENGINE_KIND", "kubernetes")
            .env("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", &lab.sa_kubeconfig)
            .env("CCLAUNCH_ENGINE_KUBERNETES_NAMESPACE", &lab.namespace)
            .env("RUST_LOG", "off")
            .env_remove(cclaunch::client::SERVER_ENV);
        for (key, value) in extra {
            command.env(key, value);
        }
        let out = command.output().expect("run cclaunch in the lab");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            common::cleanup(&self.0);
        }
    }
    let _cleanup = Cleanup(peer.clone());

    let (code, out, err) = cli(&["health"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out.trim(),
        format!(
            "engine Kubernetes of {}: ok (Kubernetes v1.20.2, API v1)",
            lab.sa_kubeconfig.display()
        )
    );

    let code_dir = dir.path().join("src");
    std::fs::create_dir_all(&code_dir).expect("mkdir");
    std::fs::write(code_dir.join("start.sh"), "echo hello from a pod\nexit 4\n").expect("write");
    let file = dir.path().join("cli.tar.gz");
    let metadata = Metadata {
        path: String::new(),
        kind: "node".to_string(),
        label: "cli".to_string(),
    };
    let id = package::write(&metadata, &code_dir, &file).expect("package");
    let (code, out, err) = cli(&["build", &file.display().to_string()], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    let image = out
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the image")
        .to_string();
    lab.images(&[&format!("{image}:latest")]);

    let (code, out, err) = cli(&["names", &id], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    let container = out
        .lines()
        .find_map(|l| l.strip_prefix("container: "))
        .expect("container")
        .to_string();
    assert!(
        out.contains(&format!("pod: {}", names::pod_name(&container))),
        "{out}"
    );

    let (code, out, err) = cli(&["start", "--peer-address", "127.0.0.1:7052", &id], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = cli(&["wait", &id], &[]);
    assert_eq!((code, out.trim()), (Some(0), "4"), "{err}");
    let (code, out, err) = cli(&["logs", &id], &[]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "hello from a pod\n"),
        "{err}"
    );
    let (code, out, err) = cli(&["ps"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&container), "{out}");
    let (code, out, err) = cli(&["stop", &id], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = cli(&["ps"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains(&container), "{out}");

    let missing = dir.path().join("no.kubeconfig").display().to_string();
    let (code, out, err) = cli(
        &["ps"],
        &[("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", missing.as_str())],
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains(&format!("cannot read the kubeconfig {missing}")),
        "{err}"
    );
    eprintln!("a missing kubeconfig: {}", err.trim());
}

/// Starts `n` chaincodes at once on `launcher`, all running `image_of`'s
/// image under ids of their own, and waits until each mirrored its first
/// line; then stops them all at once. (start calls returned, all mirrored
/// "up", all stopped), in ms.
async fn fleet(launcher: &Arc<Launcher>, image_of: &str, n: usize) -> (u128, u128, u128) {
    use sha2::{Digest, Sha256};
    let captured = captured();
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let hash = hex::encode(Sha256::digest(format!("{image_of} {i}")));
            format!("fleet{i}:{hash}")
        })
        .collect();
    let t = Instant::now();
    let starts = ids.iter().map(|id| {
        let launcher = launcher.clone();
        let request = StartRequest {
            image_of: Some(image_of.to_string()),
            ..request(id, Some(common::tls_material()))
        };
        async move { launcher.start(request).await.expect("start") }
    });
    let started = futures_util::future::join_all(starts).await;
    let start_ms = t.elapsed().as_millis();
    for s in &started {
        let target = format!("peer.chaincode.{}", s.container);
        assert!(
            eventually(Duration::from_secs(300), || captured
                .for_target(&target)
                .contains(&"up".to_string()))
            .await,
            "{} never mirrored its first line",
            s.container
        );
    }
    let up_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let stops = ids.iter().map(|id| {
        let launcher = launcher.clone();
        async move { launcher.stop(id).await.expect("stop") }
    });
    futures_util::future::join_all(stops).await;
    (start_ms, up_ms, t.elapsed().as_millis())
}

/// A measurement, not a check: `tests/cluster/with-k8s.sh cargo test --test
/// k8s_engine -- --ignored --nocapture thirty_two`.
#[test]
#[ignore]
fn thirty_two_chaincodes_at_once_on_kubernetes_and_on_docker() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        const N: usize = 32;
        let script = "echo up\nexec sleep 600\n";
        let peer = Peer::new(&lab2, "fleet", &[]).await;
        let package = peer.chaincode("fleet", script).await;
        let (start, up, stop) = fleet(&peer.launcher, &package.id, N).await;
        eprintln!("kubernetes, {N} at once: starts returned {start} ms, all running and mirrored {up} ms, all stopped {stop} ms");
        assert_eq!(peer.objects(), Vec::<String>::new());

        let env = common::Env::new("fleet-docker", &[("CORE_CHAINCODE_NODE_RUNTIME", SHENV)]).await;
        let code = env.dir.path().join("fleet-src");
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("start.sh"), script).unwrap();
        let package = env.package("node", "fleet", "", &code);
        env.launcher
            .build(&package, &|_: &str| {})
            .await
            .expect("build");
        let (start, up, stop) = fleet(&env.launcher, &package.id, N).await;
        eprintln!("docker, {N} at once: starts returned {start} ms, all running and mirrored {up} ms, all stopped {stop} ms");
    });
}

/// A `cclaunch serve` process of `peer` in the lab's namespace, on the Unix
/// socket `socket`, whose stderr (its log) is collected line by line.
struct Sidecar {
    child: tokio::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    /// Reads the log until the process's stderr closes.
    reader: tokio::task::JoinHandle<()>,
}

impl Sidecar {
    fn spawn(peer: &Peer, socket: &std::path::Path) -> Sidecar {
        use tokio::io::AsyncBufReadExt;
        let lab = &peer.lab;
        let mut command =
            tokio::process::Command::from(lab.command(env!("CARGO_BIN_EXE_cclaunch")));
        command
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .env("CORE_VM_ENDPOINT", common::endpoint())
            .env("CORE_PEER_ID", &peer.id)
            .env("CORE_PEER_NETWORKID", "test")
            .env("CORE_CHAINCODE_NODE_RUNTIME", SHENV)
            .env("CCLAUNCH_STATEDIR", common::state_dir(&peer.id))
            .env("CCLAUNCH_ENGINE_KIND", "kubernetes")
            .env("CCLAUNCH_ENGINE_KUBERNETES_KUBECONFIG", &lab.sa_kubeconfig)
            .env("CCLAUNCH_ENGINE_KUBERNETES_NAMESPACE", &lab.namespace)
            .env("NO_COLOR", "1")
            .env_remove(cclaunch::client::SERVER_ENV)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn cclaunch serve");
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Sidecar { child, log, reader }
    }

    /// Waits until every line the ended process wrote has been read.
    async fn drained(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), &mut self.reader)
            .await
            .expect("stderr closes once the process is gone")
            .expect("the reader");
    }

    /// The numbers of the `tick N` lines this sidecar mirrored, and whether
    /// it mirrored `done`.
    fn ticks(&self) -> (Vec<u32>, bool) {
        let tick = regex::Regex::new(r"peer\.chaincode\.\S+ .*\btick (\d+)$").unwrap();
        let done = regex::Regex::new(r"peer\.chaincode\.\S+ .*\bdone$").unwrap();
        let log = self.log.lock().unwrap();
        let ticks = log
            .iter()
            .filter_map(|l| tick.captures(l)?[1].parse().ok())
            .collect();
        (ticks, log.iter().any(|l| done.is_match(l)))
    }
}

#[test]
fn a_restarted_sidecar_on_kubernetes_resumes_its_mirror_with_no_line_lost_or_repeated() {
    sidecar_restart(false);
}

/// A sidecar SIGKILLed writes no last checkpoint: its successor loses no
/// line, and mirrors again exactly the lines it counted after its last
/// checkpoint was written (a few, or more while the disk is slow).
#[test]
fn a_sigkilled_sidecar_on_kubernetes_is_resumed_with_no_line_lost() {
    sidecar_restart(true);
}

/// The lines counted in the one mirror checkpoint of `peer` (the ticker
/// prints nothing but its lines, all on stdout as a Pod's log has it).
fn checkpointed_lines(peer: &str) -> u64 {
    let dir = common::state_dir(peer).join("mirror/test");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("the peer's checkpoints")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let [file] = &files[..] else {
        panic!("not one checkpoint: {files:?}");
    };
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file).expect("read")).expect("JSON");
    record["stdout"].as_u64().expect("a count of stdout lines")
}

/// A `cclaunch serve` mirroring a ticker on the lab ends (SIGTERM, or
/// SIGKILL when `kill`), and a second one resumes the mirror.
fn sidecar_restart(kill: bool) {
    use cclaunch::proto::v1 as pb;
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let peer = Peer::new(&lab2, if kill { "sigkill" } else { "serve" }, &[]).await;
        let package = peer.ticker(100).await;
        let socket = peer.dir.path().join("run/cclaunch.sock");
        let mut first = Sidecar::spawn(&peer, &socket);
        let mut client = common::grpc::launcher(&socket).await;
        client
            .start(pb::StartRequest {
                package_id: package.id.clone(),
                peer_address: "127.0.0.1:7052".into(),
                ..Default::default()
            })
            .await
            .expect("start through the sidecar");
        assert!(
            eventually(POD_LIMIT, || first.ticks().0.len() >= 10).await,
            "{:?}",
            first.log.lock().unwrap()
        );
        if kill {
            first.child.start_kill().expect("SIGKILL");
            first.child.wait().await.expect("wait");
        } else {
            let status = common::terminate(&mut first.child, Duration::from_secs(30)).await;
            assert!(status.success(), "{status}");
        }
        first.drained().await;
        let (before, _) = first.ticks();
        let checkpointed = checkpointed_lines(&peer.id);
        // Lines go on while no sidecar runs.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let second = Sidecar::spawn(&peer, &socket);
        let mut client = common::grpc::launcher(&socket).await;
        // Through the sidecar, health says what runs chaincode.
        let health = std::process::Command::new(env!("CARGO_BIN_EXE_cclaunch"))
            .args(["health", "--server"])
            .arg(format!("unix:{}", socket.display()))
            .output()
            .expect("cclaunch health");
        let said = String::from_utf8_lossy(&health.stdout);
        assert!(
            health.status.success() && said.ends_with(": ok (Kubernetes v1.20.2, API v1)\n"),
            "{said}{}",
            String::from_utf8_lossy(&health.stderr)
        );
        assert!(
            eventually(POD_LIMIT, || second.ticks().1).await,
            "{:?}",
            second.log.lock().unwrap()
        );
        let (after, _) = second.ticks();
        let last = before.last().copied().unwrap_or(0);
        // Again: lines the first mirrored after its last checkpoint (SIGKILL).
        let again = after.iter().take_while(|&&n| n <= last).count();
        let joined: Vec<u32> = before.iter().chain(&after[again..]).copied().collect();
        assert_eq!(
            joined,
            (1..=100).collect::<Vec<u32>>(),
            "first sidecar {before:?}, second {after:?}"
        );
        assert_eq!(
            after[..again],
            ((last + 1 - again as u32)..=last).collect::<Vec<u32>>()
        );
        // Mirrored again: what the first counted after its last checkpoint;
        // a clean shutdown wrote its exact position.
        assert_eq!(
            again as u64,
            u64::from(last) - checkpointed,
            "{again} lines mirrored twice, with {checkpointed} of {last} checkpointed"
        );
        if !kill {
            assert_eq!(again, 0, "a clean shutdown checkpoints every line");
        }
        eprintln!(
            "sidecar {}: {} lines by the first sidecar, {} by the second, {again} of them again",
            if kill { "SIGKILLed" } else { "restart" },
            before.len(),
            after.len()
        );
        client
            .stop(pb::ChaincodeRef {
                package_id: package.id.clone(),
            })
            .await
            .expect("stop through the sidecar");
        assert_eq!(peer.objects(), Vec::<String>::new());
        let mut second = second;
        common::terminate(&mut second.child, Duration::from_secs(30)).await;
    });
}

/// Tests that need the API server take it shared; the one that freezes it
/// takes it alone.
static API_SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The lab's API server frozen (SIGSTOP: it accepts connections and answers
/// nothing) until this is dropped (SIGCONT), also when a test panics.
struct Frozen {
    pid: String,
}

impl Frozen {
    fn api_server(lab: &Cluster) -> Frozen {
        let pids = std::fs::read_to_string(lab.dir.join("pids")).expect("the lab's pids");
        let pid = pids
            .lines()
            .find_map(|l| l.strip_prefix("kube-apiserver "))
            .expect("the API server's pid")
            .trim()
            .to_string();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("its comm");
        assert_eq!(comm.trim(), "kube-apiserver", "pid {pid}");
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill -STOP");
        assert!(status.success());
        Frozen { pid }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.pid])
            .status();
    }
}

/// The lab's API server killed (SIGKILL) until this is dropped, which
/// starts it again as it was (tests/cluster/k8s-daemon.sh), also when a test
/// panics.
struct Killed {
    lab: Cluster,
}

impl Killed {
    fn api_server(lab: &Cluster) -> Killed {
        Killed::daemon(lab, "kill");
        Killed { lab: lab.clone() }
    }

    fn daemon(lab: &Cluster, op: &str) {
        let out = lab
            .script("k8s-daemon.sh")
            .args([op, "kube-apiserver"])
            .output()
            .expect("run k8s-daemon.sh");
        assert!(
            out.status.success(),
            "k8s-daemon.sh {op}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        Killed::daemon(&self.lab, "start");
    }
}

/// Waits until the launcher's health is good again; how long it took.
async fn healthy_again(peer: &Peer) -> Duration {
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    while let Err(e) = peer.launcher.health().await {
        assert!(Instant::now() < deadline, "no health again: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.elapsed()
}

/// The API server frozen (SIGSTOP: it accepts connections and answers
/// nothing) under a running chaincode: health and listing time out, naming
/// the call; once it answers again, health is back and the mirror goes on to
/// the end with no line lost or repeated.
#[test]
fn an_api_server_that_stops_answering_is_a_clear_error_and_the_mirror_carries_on_after() {
    api_server_away(Away::Frozen);
}

/// The API server killed under a running chaincode: health and listing fail
/// at once with an error naming the API server; started again, health comes
/// back and the mirror, which lost its log stream, goes on to the end with
/// no line lost or repeated.
#[test]
fn an_api_server_killed_under_running_chaincode_is_a_clear_error_and_all_recovers_when_it_is_back()
{
    api_server_away(Away::Killed);
}

/// How the API server goes away.
#[derive(Clone, Copy, PartialEq)]
enum Away {
    Frozen,
    Killed,
}

fn api_server_away(away: Away) {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _alone = API_SERVER.write().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let name = match away {
            Away::Frozen => "apifrozen",
            Away::Killed => "apikilled",
        };
        let peer = Peer::new(
            &lab2,
            name,
            &[
                ("CCLAUNCH_ENGINE_REQUESTTIMEOUT", "3s"),
                ("CCLAUNCH_ENGINE_HEALTHTIMEOUT", "2s"),
            ],
        )
        .await;
        let ticks = 250;
        let (package, target) = peer.ticking(ticks, &captured).await;

        let gone: Box<dyn std::any::Any + Send> = match away {
            Away::Frozen => Box::new(Frozen::api_server(&lab2)),
            Away::Killed => Box::new(Killed::api_server(&lab2)),
        };
        let t = Instant::now();
        let health = cclaunch::error_chain(&peer.launcher.health().await.expect_err("no health"));
        let health_took = t.elapsed();
        let t = Instant::now();
        let listed = cclaunch::error_chain(&peer.launcher.list().await.expect_err("no listing"));
        let list_took = t.elapsed();
        assert!(
            health.starts_with(cclaunch::launcher::KUBERNETES_PING_FAILED),
            "{health}"
        );
        match away {
            Away::Frozen => {
                assert!(health.contains("timed out after 2 s"), "{health}");
                assert!(listed.contains("timed out after 3 s"), "{listed}");
            }
            Away::Killed => {
                for said in [&health, &listed] {
                    assert!(said.contains("https://127.0.0.1:6443"), "{said}");
                }
                assert!(health_took + list_took < Duration::from_secs(5));
                // Away a while, as a restarting API server is.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        eprintln!(
            "API server {name}: health in {health_took:.1?}: {health}; list in {list_took:.1?}: {listed}"
        );
        drop(gone);

        eprintln!("healthy again {:.1?} after it came back", healthy_again(&peer).await);
        assert!(
            eventually(POD_LIMIT, || captured
                .for_target(&target)
                .contains(&"done".to_string()))
            .await,
            "{:?}",
            captured.for_target(&target)
        );
        let mut expected: Vec<String> = (1..=ticks).map(|i| format!("tick {i}")).collect();
        expected.push("done".to_string());
        assert_eq!(captured.for_target(&target), expected);
        peer.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}

/// A devpeer on 127.0.0.1 in the lab's namespace (mutual TLS), where
/// host-network Pods reach it. Call it inside `Cluster::block_on`.
async fn devpeer(
    ca: &cclaunch::devpeer::ca::DevCa,
) -> (cclaunch::devpeer::DevPeer, std::net::SocketAddr) {
    use cclaunch::devpeer::{Creator, DevPeer, TlsSetup};
    let admin = ca.client("Admin@Org1MSP").expect("admin identity");
    let peer = DevPeer::new(Creator {
        msp_id: "Org1MSP".into(),
        cert_pem: admin.client_cert,
    });
    let server = ca
        .server(&["127.0.0.1".to_string()])
        .expect("server identity");
    let tls = TlsSetup {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
        client_ca_pem: ca.ca_pem(),
    };
    let listening = peer
        .listen("127.0.0.1:0".parse().unwrap(), Some(tls))
        .await
        .expect("devpeer listens in the lab");
    let addr = listening.addr;
    // Served until the test's runtime ends.
    std::mem::forget(listening);
    (peer, addr)
}

#[test]
fn the_go_sample_runs_as_a_pod_with_its_tls_files_and_reaches_a_devpeer_on_the_nodes_loopback() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let peer = Peer::new(&lab2, "go", &[]).await;
        let file = peer.dir.path().join("go.tar.gz");
        let metadata = Metadata {
            path: "example.com/cclaunch/sample".to_string(),
            kind: "golang".to_string(),
            label: "k8sgo_1".to_string(),
        };
        package::write(
            &metadata,
            &common::repo().join("testdata/chaincode/golang"),
            &file,
        )
        .expect("package");
        let package = Package::open(&file, Limits::default()).expect("package is valid");
        peer.import(&package).await;
        let ca = cclaunch::devpeer::ca::DevCa::new().expect("CA");
        let (_devpeer, addr) = devpeer(&ca).await;
        let started = peer
            .launcher
            .start(StartRequest {
                peer_address: addr.to_string(),
                ..request(&package.id, Some(ca.client(&package.id).expect("client")))
            })
            .await
            .expect("start");
        let target = format!("peer.chaincode.{}", started.container);
        let lines = || captured.for_target(&target);
        assert!(
            eventually(POD_LIMIT, || lines()
                .contains(&"sample-go ready".to_string()))
            .await,
            "{:?}",
            lines()
        );
        for expected in [
            "tls ok".to_string(),
            format!("peer connected {addr}"),
            format!("env CORE_CHAINCODE_ID_NAME={}", package.id),
        ] {
            assert!(
                lines().contains(&expected),
                "{expected:?} not in {:?}",
                lines()
            );
        }
        peer.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}

#[test]
fn a_node_chaincode_on_the_real_shim_registers_with_a_devpeer_over_mutual_tls_and_answers_invokes()
{
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let code = common::node::shim_with_dependencies(dir.path());
    let package = common::node::package_with_node_modules(dir.path(), "k8sshim_1.0", &code);
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let peer = Peer::new(
            &lab2,
            "node",
            &[("CORE_CHAINCODE_NODE_RUNTIME", common::NODEENV)],
        )
        .await;
        peer.import(&package).await;
        let ca = cclaunch::devpeer::ca::DevCa::new().expect("CA");
        let (devpeer, addr) = devpeer(&ca).await;
        let t = Instant::now();
        let started = peer
            .launcher
            .start(StartRequest {
                peer_address: addr.to_string(),
                ..request(&package.id, Some(ca.client(&package.id).expect("client")))
            })
            .await
            .expect("start");
        let target = format!("peer.chaincode.{}", started.container);
        tokio::time::timeout(POD_LIMIT, devpeer.wait_registered(&package.id))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "never registered; its output: {:?}",
                    captured.for_target(&target)
                )
            });
        eprintln!(
            "node chaincode registered {:.1?} after its start call",
            t.elapsed()
        );
        common::assert_put_get(&devpeer, &package.id).await;
        assert!(
            eventually(Duration::from_secs(30), || captured
                .for_target(&target)
                .iter()
                .any(|l| l.contains("node-shim") && l.contains("put")))
            .await,
            "its own log lines are mirrored: {:?}",
            captured.for_target(&target)
        );
        peer.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}

#[test]
fn deleting_the_owner_pod_deletes_every_chaincode_pod_and_its_secret() {
    use kube::api::{DeleteParams, PostParams};
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    lab.images(&["busybox"]);
    let owner = common::unique_peer("owner").to_lowercase();
    struct Gone(Cluster, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = self.0.kubectl(&[
                "delete",
                "pod",
                "-n",
                &self.0.namespace,
                &self.1,
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
        }
    }
    let _gone = Gone(lab.clone(), owner.clone());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let client = lab2.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &lab2.namespace);
        // A stand-in for the sidecar's own Pod.
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": owner},
            "spec": {
                "hostNetwork": true,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": false,
                "containers": [{
                    "name": "sidecar",
                    "image": common::BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "600"],
                }],
            },
        }))
        .expect("pod");
        let made = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("the owner");
        let uid = made.metadata.uid.expect("uid");
        let peer = Peer::new(
            &lab2,
            "owned",
            &[
                ("CCLAUNCH_ENGINE_KUBERNETES_OWNER_NAME", owner.as_str()),
                ("CCLAUNCH_ENGINE_KUBERNETES_OWNER_UID", uid.as_str()),
            ],
        )
        .await;
        let script = "echo up\nexec sleep 600\n";
        let (one, two) = (
            peer.chaincode("one", script).await,
            peer.chaincode("two", script).await,
        );
        let mut containers = Vec::new();
        for package in [&one, &two] {
            let started = peer
                .launcher
                .start(request(&package.id, Some(common::tls_material())))
                .await
                .expect("start");
            containers.push(started.container);
        }
        let chaincode = pods
            .get(&names::pod_name(&containers[0]))
            .await
            .expect("a chaincode pod");
        let refs = chaincode.metadata.owner_references.expect("owned");
        assert_eq!(
            (
                refs[0].kind.as_str(),
                refs[0].name.as_str(),
                refs[0].uid.as_str()
            ),
            ("Pod", owner.as_str(), uid.as_str())
        );
        assert_eq!(peer.objects().len(), 4, "{:?}", peer.objects());

        let t = Instant::now();
        pods.delete(&owner, &DeleteParams::default().grace_period(0))
            .await
            .expect("delete the owner");
        let deadline = Instant::now() + POD_LIMIT;
        while !peer.objects().is_empty() {
            assert!(Instant::now() < deadline, "left: {:?}", peer.objects());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "owner deleted: its 2 chaincode pods and their secrets gone in {} ms",
            t.elapsed().as_millis()
        );
    });
}

/// Placement from configuration: the node selector, tolerations and image
/// pull Secrets reach the Pod as given, and the Pod runs on the node they
/// allow; a selector no node matches is an error from Wait naming the Pod
/// and the scheduler's reason, within the start deadline (the slow timeout,
/// 10 s here), and Stop leaves nothing.
#[test]
fn a_pod_is_placed_by_its_node_selector_and_one_no_node_matches_is_a_clear_error() {
    let Some(lab) = Cluster::from_env() else {
        return;
    };
    let _shared = API_SERVER.read().unwrap_or_else(|p| p.into_inner());
    let lab2 = lab.clone();
    lab.block_on(async move {
        let captured = captured();
        let peer = Peer::new(
            &lab2,
            "placed",
            &[
                (
                    "CCLAUNCH_ENGINE_KUBERNETES_NODESELECTOR",
                    "kubernetes.io/hostname=127.0.0.1,kubernetes.io/os=linux",
                ),
                (
                    "CCLAUNCH_ENGINE_KUBERNETES_TOLERATIONS",
                    "dedicated=chaincode:NoSchedule,spot",
                ),
                (
                    "CCLAUNCH_ENGINE_KUBERNETES_IMAGEPULLSECRETS",
                    "cclaunch-pull",
                ),
            ],
        )
        .await;
        let package = peer.chaincode("placed", "echo placed\n").await;
        let (container, code) = peer.run_to_exit(&package, None, "placed", &captured).await;
        assert_eq!(code, 0);
        let pods: Api<Pod> = Api::namespaced(lab2.client().await, &lab2.namespace);
        let pod = pods
            .get(&names::pod_name(&container))
            .await
            .expect("the Pod");
        let spec = pod.spec.expect("spec");
        assert_eq!(
            spec.node_selector.expect("node selector"),
            std::collections::BTreeMap::from([
                (
                    "kubernetes.io/hostname".to_string(),
                    "127.0.0.1".to_string()
                ),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
            ])
        );
        let tolerations: Vec<String> = spec
            .tolerations
            .expect("tolerations")
            .iter()
            .map(|t| format!("{:?} {:?} {:?} {:?}", t.key, t.operator, t.value, t.effect))
            .collect();
        // Ours first; the DefaultTolerationSeconds admission adds its own.
        assert_eq!(
            tolerations[..2],
            [
                r#"Some("dedicated") Some("Equal") Some("chaincode") Some("NoSchedule")"#,
                r#"Some("spot") Some("Exists") None None"#,
            ]
        );
        assert_eq!(
            spec.image_pull_secrets.expect("pull secrets")[0].name,
            "cclaunch-pull"
        );
        assert_eq!(spec.node_name.as_deref(), Some("127.0.0.1"));
        peer.launcher.stop(&package.id).await.expect("stop");

        let nowhere = Peer::new(
            &lab2,
            "nowhere",
            &[
                ("CCLAUNCH_ENGINE_KUBERNETES_NODESELECTOR", "disk=ssd"),
                ("CCLAUNCH_ENGINE_SLOWREQUESTTIMEOUT", "10s"),
            ],
        )
        .await;
        let package = nowhere.chaincode("nowhere", "echo never\n").await;
        let started = nowhere
            .launcher
            .start(request(&package.id, None))
            .await
            .expect("start");
        let t = Instant::now();
        let error = tokio::time::timeout(POD_LIMIT, nowhere.launcher.wait(&package.id))
            .await
            .expect("wait within the limit")
            .expect_err("an unschedulable Pod is an error");
        let text = cclaunch::error_chain(&error);
        eprintln!("after {:.1?}: {text}", t.elapsed());
        assert!(
            text.contains("Unschedulable")
                && text.contains("didn't match")
                && text.contains(&names::pod_name(&started.container)),
            "{text}"
        );
        nowhere.launcher.stop(&package.id).await.expect("stop");
        assert_eq!(nowhere.objects(), Vec::<String>::new());
        assert_eq!(peer.objects(), Vec::<String>::new());
    });
}
