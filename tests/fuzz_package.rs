//! Fuzzing the package reader on the stable toolchain: mutants of the corpus
//! (testdata/fuzz/corpus, testdata/good, the small files of testdata/bad)
//! from a seeded, structure-aware mutator (tests/common/mutate.rs) go
//! through `Package::open` and, when accepted, `read_code`. For every input:
//! no panic, no hang (a watchdog aborts on one), memory bounded (this binary
//! counts every allocation), and a refusal is an error of bounded length with
//! no raw control characters. An input whose outcome is new joins the corpus
//! for the rest of the run.
//!
//! `cargo test --test fuzz_package` runs a short deterministic round;
//! `make fuzz` (CCLAUNCH_FUZZ_SECONDS, CCLAUNCH_FUZZ_SEED) a long one.
//! Failing inputs are written under target/tmp/fuzz-failures/.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cclaunch::package::{Limits, Package};
use common::mutate::{self, Rng};

/// Counts live heap bytes and their peak, for the memory invariant.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// counters are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Inputs in the short (CI) round.
const SHORT_ROUND: u64 = 2000;
/// What one `Package::open` may allocate beyond what was live before it: the
/// read buffers, two inflaters, and a few copies of one 1 MiB header.
const MEMORY_MAX: usize = 24 << 20;
/// A refusal's length, beyond the file's path.
const MESSAGE_MAX: usize = 1024;
/// One input's time (debug build) before it counts as slow, and as hung.
const SLOW: Duration = Duration::from_secs(5);
const HUNG: Duration = Duration::from_secs(60);
/// Inputs kept for mutation at most, and the largest kept.
const CORPUS_MAX: usize = 2000;
const KEEP_MAX: usize = 256 << 10;

/// The seed files: small enough to mutate quickly.
fn corpus() -> Vec<Vec<u8>> {
    let repo = common::repo();
    let mut files: Vec<PathBuf> = ["testdata/fuzz/corpus", "testdata/good", "testdata/bad"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo.join(dir)).expect("corpus dir"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .filter(|bytes| bytes.len() <= 64 << 10)
        // Bombs make slow seeds: keep those whose layers inflate to little.
        .filter(|bytes| {
            mutate::gunzip(bytes).is_none_or(|outer| {
                outer.len() <= 4 << 20
                    && mutate::headers(&outer)
                        .iter()
                        .filter(|(_, name, _, _)| name == b"code.tar.gz")
                        .all(|&(off, _, _, size)| {
                            outer
                                .get(off + 512..off + 512 + size)
                                .and_then(mutate::gunzip)
                                .is_none_or(|code| code.len() <= 4 << 20)
                        })
            })
        })
        .collect();
    assert!(corpus.len() >= 40, "only {} seeds", corpus.len());
    corpus
}

/// What kind of outcome an input had: the message with its numbers and
/// quoted names taken out.
fn outcome_class(result: &Result<Package, String>) -> String {
    let Err(message) = result else {
        return "accepted".into();
    };
    let mut class = String::new();
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted || c.is_ascii_digit() => {}
            _ => class.push(c),
        }
    }
    class
}

struct Watchdog {
    /// Milliseconds since `epoch` when the current input started; 0 = idle.
    started: AtomicU64,
    epoch: Instant,
}

fn save(dir: &Path, what: &str, n: u64, input: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("failures dir");
    let path = dir.join(format!("{what}-{n}.tar.gz"));
    std::fs::write(&path, input).expect("save failing input");
    path
}

#[test]
fn the_package_reader_survives_mutated_packages() {
    let settings = mutate::Settings::from_env(SHORT_ROUND);
    let seed = settings.seed;
    let mut rng = Rng::new(seed);
    let seeds = corpus();
    let mut pool = seeds.clone();
    let mut classes = std::collections::HashSet::new();
    let failures_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let work = tempfile::tempdir().unwrap();
    let input_path = work.path().join("input.tar.gz");
    // Above the mutator's largest header, so a reader that holds headers
    // whole would show in the memory bound rather than hit this cap first.
    let limits = Limits {
        max_unpacked_bytes: 64 << 20,
    };

    let watchdog = Arc::new(Watchdog {
        started: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    {
        let watchdog = watchdog.clone();
        let input_path = input_path.clone();
        let failures_dir = failures_dir.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let started = watchdog.started.load(Ordering::Relaxed);
            let now = watchdog.epoch.elapsed().as_millis() as u64;
            if started != 0 && now - started > HUNG.as_millis() as u64 {
                let input = std::fs::read(&input_path).unwrap_or_default();
                let saved = save(&failures_dir, "hang", seed, &input);
                eprintln!(
                    "fuzz: an input ran {}s (seed {seed}), saved as {}",
                    HUNG.as_secs(),
                    saved.display()
                );
                std::process::abort();
            }
        });
    }

    let began = Instant::now();
    let mut failures = Vec::new();
    let (mut n, mut accepted, mut slowest, mut most_memory) = (0u64, 0u64, Duration::ZERO, 0);
    let mut last_report = Instant::now();
    loop {
        if settings.done(n, began) {
            break;
        }
        n += 1;
        let input = {
            let seed_input = rng.pick(&pool).clone();
            mutate::mutate(&mut rng, &seed_input, &seeds)
        };
        std::fs::write(&input_path, &input).unwrap();

        let live_before = LIVE.load(Ordering::Relaxed);
        PEAK.store(live_before, Ordering::Relaxed);
        watchdog.started.store(
            watchdog.epoch.elapsed().as_millis().max(1) as u64,
            Ordering::Relaxed,
        );
        let started = Instant::now();
        let result = std::panic::catch_unwind(|| {
            Package::open(&input_path, limits).map_err(|e| cclaunch::error_chain(&e))
        });
        let took = started.elapsed();
        watchdog.started.store(0, Ordering::Relaxed);
        let memory = PEAK.load(Ordering::Relaxed).saturating_sub(live_before);
        slowest = slowest.max(took);
        most_memory = most_memory.max(memory);

        let mut fail = |what: &str, detail: String| {
            let saved = save(&failures_dir, what, n, &input);
            failures.push(format!("{what} ({}): {detail}", saved.display()));
        };
        let Ok(result) = result else {
            fail("panic", "Package::open panicked".into());
            continue;
        };
        if took > SLOW {
            fail("slow", format!("took {took:?}"));
        }
        if memory > MEMORY_MAX {
            fail("memory", format!("allocated {memory} bytes at its peak"));
        }
        match &result {
            Ok(package) => {
                accepted += 1;
                let code = package.read_code(|_| Ok(()));
                if let Err(e) = code {
                    fail("read_code", cclaunch::error_chain(&e));
                }
            }
            Err(message) => {
                let budget = input_path.display().to_string().len() + MESSAGE_MAX;
                if message.len() > budget {
                    fail("long-message", format!("{} bytes", message.len()));
                }
                if message.chars().any(char::is_control) {
                    fail("control-chars", format!("{message:?}"));
                }
            }
        }
        let class =
            outcome_class(&result.map_err(|m| m.replace(&input_path.display().to_string(), "")));
        if classes.insert(class)
            && input.len() <= KEEP_MAX
            && pool.len() < CORPUS_MAX
            && mutate::gunzip(&input).is_none_or(|tar| tar.len() <= 4 << 20)
        {
            pool.push(input);
        }
        if settings.long() && last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "fuzz: {n} inputs in {:?}, {accepted} accepted, {} outcomes, pool {}, slowest {slowest:?}, most memory {most_memory} B, {} failures",
                began.elapsed(),
                classes.len(),
                pool.len(),
                failures.len()
            );
        }
    }
    eprintln!(
        "fuzz (seed {seed}): {n} inputs in {:?}, {accepted} accepted, {} distinct outcomes, slowest {slowest:?}, most memory {most_memory} bytes",
        began.elapsed(),
        classes.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The mutator must reach past gzip: many kinds of refusal, some acceptances.
    assert!(
        classes.len() >= 30,
        "only {} distinct outcomes",
        classes.len()
    );
    assert!(accepted > 0, "no mutant was accepted");
}
