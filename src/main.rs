use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    few_malloc_arenas();
    let cli = cclaunch::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rustls=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(cclaunch::cli::run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            cli.own_failure()
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// glibc gives a new thread a malloc arena of its own, up to eight per core,
/// and never gives one back. The blocking pool's threads come and go with
/// checkpoint writes, so a sidecar mirroring 1,000 chaincodes stepped its
/// RSS up by megabytes, an arena at a time, while its live heap stayed
/// flat (heaptrack: at most 58 KB allocated after the first minute was live
/// at once). Two arenas carry its allocation rate (about 20,000 a second
/// there) without contention that matters.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's malloc, and this runs
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
