//! Prepared containers on the in-memory engine: when one is made, when a
//! Start uses it and when it replaces it, turns and cancellation, restarts.

use std::sync::Arc;

use super::tests::{assert_tls_files, built, request, restarted, setup_with, spawn_start, Setup};
use super::{Launcher, StartRequest};
use crate::runtime::fake::{Container, Fake};
use crate::runtime::{self, Labels, Runner, LABEL_PREPARED};

/// A sidecar (it claimed its peer) on a fresh fake engine, with `more`
/// configuration; `id` built.
fn sidecar(peer: &str, id: &str, more: &[(&str, &str)]) -> Setup {
    let mut more = more.to_vec();
    if !more.iter().any(|(k, _)| *k == "CCLAUNCH_PREPARE") {
        more.push(("CCLAUNCH_PREPARE", "true"));
    }
    let s = setup_with(peer, "10m", &more);
    s.launcher.claim().expect("claimed");
    built(&s, id);
    s.fake.keep_running();
    s
}

/// A package id of its own per test (`n` from 0 to 15).
fn id(n: u32) -> String {
    let digit = char::from_digit(n, 16).unwrap_or('0');
    format!("cc:{}", digit.to_string().repeat(64))
}

fn the_container(fake: &Fake) -> Container {
    let all = fake.containers();
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// Start, stop, and wait for the container prepared after the stop.
async fn prepared_after_a_run(s: &Setup, id: &str, tls: bool) -> Container {
    s.launcher.start(request(id, tls)).await.expect("started");
    s.launcher.stop(id).await.expect("stopped");
    s.launcher.prepared(id).await;
    the_container(&s.fake)
}

#[tokio::test(start_paused = true)]
async fn a_stop_prepares_the_next_container_and_a_start_only_puts_the_files_in() {
    let id = &id(0);
    let s = sidecar("prep", id, &[]);
    let prepared = prepared_after_a_run(&s, id, true).await;
    assert!(prepared.labels.contains_key(LABEL_PREPARED));
    assert!(!prepared.started, "never started");
    assert!(prepared.files.is_empty(), "no TLS file before a start");
    let listed = s.launcher.list().await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "prepared");
    assert_eq!(s.launcher.running().await.unwrap(), 0);

    let creates = s.fake.calls("create_container");
    s.launcher.start(request(id, true)).await.expect("started");
    let started = the_container(&s.fake);
    assert_eq!(started.id, prepared.id, "the prepared container ran");
    assert!(started.running);
    assert_eq!(s.fake.calls("create_container"), creates, "no create");
    assert_eq!(s.fake.calls("put_files"), 1);
    assert_tls_files(&started);
    // Args and env are those of a container created for this start.
    let first = s.fake.containers();
    assert!(first[0]
        .env
        .contains(&"CORE_PEER_TLS_ENABLED=true".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_prepared_container_that_does_not_match_the_start_is_replaced_never_started() {
    type Change = fn(StartRequest) -> StartRequest;
    let changes: [(&str, Change); 5] = [
        ("TLS off", |r| StartRequest { tls: None, ..r }),
        ("peer address", |r| StartRequest {
            peer_address: "127.0.0.1:7099".into(),
            ..r
        }),
        ("MSP id", |r| StartRequest {
            msp_id: Some("Org9MSP".into()),
            ..r
        }),
        ("extra env", |r| StartRequest {
            extra_env: vec!["EXTRA=1".into()],
            ..r
        }),
        ("platform", |r| StartRequest {
            platform: Some(crate::platform::Platform::Golang),
            ..r
        }),
    ];
    for (what, change) in changes {
        let id = &id(1);
        let s = sidecar("mismatch", id, &[]);
        let prepared = prepared_after_a_run(&s, id, true).await;
        let starts = s.fake.calls("start_container");
        s.launcher
            .start(change(request(id, true)))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let now = the_container(&s.fake);
        assert_ne!(now.id, prepared.id, "{what}: replaced");
        assert!(!now.labels.contains_key(LABEL_PREPARED), "{what}");
        assert_eq!(s.fake.calls("put_files"), 0, "{what}: nothing put in it");
        assert_eq!(s.fake.calls("start_container"), starts + 1, "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rebuilt_image_or_a_changed_configuration_replaces_a_prepared_container() {
    let id = &id(2);
    let s = sidecar("rebuilt", id, &[]);
    let prepared = prepared_after_a_run(&s, id, false).await;
    built(&s, id); // the same tag, another image id
    s.launcher.start(request(id, false)).await.expect("started");
    assert_ne!(the_container(&s.fake).id, prepared.id, "rebuilt image");

    let s = sidecar("reconfig", id, &[]);
    let prepared = prepared_after_a_run(&s, id, false).await;
    // Another sidecar of the peer, its logging level changed (the env).
    let config = crate::config::Config::load_with_env(None, |key| match key {
        "CORE_PEER_ID" => Some("reconfig".into()),
        "CORE_CHAINCODE_LOGGING_LEVEL" => Some("debug".into()),
        "CCLAUNCH_STATEDIR" => Some(
            s.launcher
                .config()
                .state_dir()
                .join("other")
                .display()
                .to_string(),
        ),
        _ => None,
    })
    .unwrap();
    let other = Launcher::new(Arc::new(s.fake.clone()), config);
    other.start(request(id, false)).await.expect("started");
    let now = the_container(&s.fake);
    assert_ne!(now.id, prepared.id, "changed env");
    assert!(now
        .env
        .contains(&"CORE_CHAINCODE_LOGGING_LEVEL=debug".to_string()));
}

#[tokio::test(start_paused = true)]
async fn two_starts_of_one_chaincode_use_its_prepared_container_once() {
    let id = &id(3);
    let s = sidecar("twostarts", id, &[]);
    let prepared = prepared_after_a_run(&s, id, true).await;
    s.fake.hold("put_files");
    let first = spawn_start(&s, id, true);
    s.fake.reached("put_files", 1).await;
    let second = spawn_start(&s, id, true);
    s.fake.open("put_files", 1);
    first.await.unwrap().expect("first started");
    second.await.unwrap().expect("second started");
    // The second waited for its turn, found a running container and
    // replaced it, as two starts always did.
    assert_eq!(s.fake.calls("put_files"), 1);
    let now = the_container(&s.fake);
    assert_ne!(now.id, prepared.id);
    assert!(!now.labels.contains_key(LABEL_PREPARED));
}

#[tokio::test(start_paused = true)]
async fn a_start_racing_the_preparation_waits_and_uses_what_it_made() {
    let id = &id(4);
    let s = sidecar("race", id, &[]);
    s.launcher.start(request(id, true)).await.expect("started");
    s.fake.hold("create_container");
    s.launcher.stop(id).await.expect("stopped");
    s.fake.reached("create_container", 1).await; // the preparation
    let start = spawn_start(&s, id, true);
    s.fake.open("create_container", 1);
    start.await.unwrap().expect("started");
    let now = the_container(&s.fake);
    assert!(
        now.labels.contains_key(LABEL_PREPARED),
        "the prepared one ran"
    );
    assert!(now.running);
    assert_eq!(
        s.fake.calls("create_container"),
        2,
        "first start, preparation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_cancelled_with_the_files_in_removes_the_container_before_another_start() {
    let id = &id(5);
    let s = sidecar("cancel", id, &[]);
    let prepared = prepared_after_a_run(&s, id, true).await;
    s.fake.hold("start_container");
    let first = spawn_start(&s, id, true);
    s.fake.reached("start_container", 1).await;
    first.abort();
    let _ = first.await;
    // The next start takes its turn only once the taken container is gone.
    s.fake.open("start_container", 1);
    spawn_start(&s, id, true)
        .await
        .unwrap()
        .expect("next start");
    let now = the_container(&s.fake);
    assert_ne!(
        now.id, prepared.id,
        "the container that held the files went"
    );
    assert!(now.running);
}

#[tokio::test(start_paused = true)]
async fn a_failed_start_of_a_prepared_container_removes_it() {
    let id = &id(6);
    let s = sidecar("failed", id, &[]);
    prepared_after_a_run(&s, id, true).await;
    s.fake.fail("start_container", || runtime::Error::Timeout {
        op: "start container",
        target: "x".into(),
        seconds: 1,
    });
    s.launcher
        .start(request(id, true))
        .await
        .expect_err("start failed");
    assert!(s.fake.containers().is_empty(), "nothing half-done left");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_sidecar_keeps_clean_prepared_containers_and_removes_ones_holding_files() {
    let (clean, crashed) = (&id(7), &id(8));
    let s = sidecar("restart", clean, &[]);
    built(&s, crashed);
    for id in [clean, crashed] {
        s.launcher.start(request(id, true)).await.expect("started");
        s.launcher.stop(id).await.expect("stopped");
        s.launcher.prepared(id).await;
    }
    // A start that died between putting the files in and starting.
    let crashed_name = s.launcher.names(crashed).unwrap().container;
    let tls = super::tls::files(request(crashed, true).tls.as_ref().unwrap());
    s.fake.put_files(&crashed_name, &tls).await.unwrap();
    let next = restarted(&s);
    let Setup {
        fake,
        launcher,
        _dir,
        ..
    } = s;
    // The old sidecar goes, and its lock with it.
    launcher.stop_mirrors().await;
    drop(launcher);
    next.claim().unwrap_or_else(|_| panic!("claimed"));
    let removed = next.clean_up_leftovers().await.expect("cleaned up");
    assert_eq!(removed.unstarted_containers, [crashed_name]);
    let kept = the_container(&fake);
    assert_eq!(kept.name, next.names(clean).unwrap().container);
    assert!(
        next.resume().await.expect("resumed").is_empty(),
        "not mirrored"
    );
    next.start(request(clean, true)).await.expect("started");
    assert_eq!(the_container(&fake).id, kept.id, "used after the restart");
}

#[tokio::test(start_paused = true)]
async fn a_build_prepares_its_container_as_the_last_start_ran_not_on_the_builders_road() {
    let other = &id(9);
    let s = sidecar("afterbuild", other, &[]);
    let image = s.launcher.names(&s.package.id).unwrap().image;
    let node = Labels::from([(runtime::LABEL_FABRIC_TYPE.to_string(), "NODE".to_string())]);
    s.fake.add_image(&image, node);
    // Nothing started yet: nothing to go by.
    s.launcher.build(&s.package, &|_: &str| {}).await.unwrap();
    s.launcher.prepared(&s.package.id).await;
    assert!(s.fake.containers().is_empty());

    s.launcher
        .start(request(other, true))
        .await
        .expect("started");
    s.launcher.build(&s.package, &|_: &str| {}).await.unwrap();
    s.launcher.prepared(&s.package.id).await;
    let name = s.launcher.names(&s.package.id).unwrap().container;
    let prepared = s
        .fake
        .containers()
        .into_iter()
        .find(|c| c.name == name)
        .expect("prepared after the build");
    s.launcher
        .start(StartRequest {
            platform: None,
            ..request(&s.package.id, true)
        })
        .await
        .expect("started");
    let ran = s.fake.containers().into_iter().find(|c| c.name == name);
    assert_eq!(ran.map(|c| (c.id, c.running)), Some((prepared.id, true)));

    // The builder's road: the last start ran another package's image.
    let s = sidecar("builderroad", other, &[]);
    let image = s.launcher.names(&s.package.id).unwrap().image;
    s.fake.add_image(&image, Labels::new());
    s.launcher
        .start(StartRequest {
            image_of: Some(s.package.id.clone()),
            ..request(other, true)
        })
        .await
        .expect("started");
    s.launcher.build(&s.package, &|_: &str| {}).await.unwrap();
    s.launcher.prepared(&s.package.id).await;
    assert_eq!(s.fake.containers().len(), 1, "only the running one");
}

#[tokio::test(start_paused = true)]
async fn nothing_is_prepared_when_switched_off_or_by_the_cli() {
    let id = &id(10);
    let s = sidecar("off", id, &[("CCLAUNCH_PREPARE", "false")]);
    s.launcher.start(request(id, false)).await.expect("started");
    s.launcher.stop(id).await.expect("stopped");
    s.launcher.prepared(id).await;
    assert!(s.fake.containers().is_empty(), "switched off");

    let s = setup_with("cli", "10m", &[("CCLAUNCH_PREPARE", "true")]);
    built(&s, id);
    s.launcher.start(request(id, false)).await.expect("started");
    s.launcher.stop(id).await.expect("stopped");
    s.launcher.prepared(id).await;
    assert!(s.fake.containers().is_empty(), "not a sidecar");
}

#[tokio::test(start_paused = true)]
async fn stop_and_gc_remove_a_prepared_container_and_prepare_none_again() {
    let id = &id(11);
    let s = sidecar("stopgc", id, &[]);
    prepared_after_a_run(&s, id, false).await;
    s.launcher.stop(id).await.expect("stopped");
    s.launcher.prepared(id).await;
    assert!(s.fake.containers().is_empty(), "stopping a prepared one");

    prepared_after_a_run(&s, id, false).await;
    let all = crate::launch::Selection::AllBut(Vec::new());
    let collected = s.launcher.gc(&all).await.expect("gc");
    assert_eq!(collected.containers.len(), 1);
    assert!(s.fake.containers().is_empty());
}
