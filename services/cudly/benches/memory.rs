//! Memory benchmark (not a test): resident memory (VmRSS of `/proc/<pid>/status`) of each
//! service process idle and under the gateway load of the gateway benchmark.
//!
//! First with one process per service (the `cudly-accounts`, `cudly-planner`,
//! `cudly-executor`, `cudly-sweeper` and `cudly-gateway` binaries, production mode,
//! wired to each other over loopback gRPC with generated secrets), then with the
//! all-in-one `cudly` binary, each on the same fresh database. Per process: VmRSS after
//! start-up and an idle pause, the highest VmRSS sampled every 200 ms under load, and
//! VmHWM (the kernel's own peak) at the end. The load: 64 tasks, each on its own
//! keep-alive connection, half on `GET /api/accounts/{id}`, half on
//! `GET /api/executions/{id}`, 2 s of warm-up, 10 s measured.
//!
//! Cargo builds only the `cudly` binary for this package's benchmarks; build the service
//! binaries in the same profile first, else only `cudly` is measured:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo bench --workspace --bench memory
//! ```
//!
//! Knobs: `MEMORY_IDLE_SECONDS` (5), `GATEWAY_CONNECTIONS` (64), `GATEWAY_WARMUP_SECONDS`
//! (2), `GATEWAY_SECONDS` (10), `GATEWAY_RUST_LOG` (`info`), `BENCH_BIN_DIR` (where the
//! binaries are; default next to cargo's `cudly`, `target/<profile>/`).

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::{Layout, LoadShape, Memory, System};
use cudly_testkit::{TestDb, bench};

fn main() -> anyhow::Result<()> {
    bench::block_on(run())
}

fn print_header(shape: &LoadShape, idle: Duration, log_level: &str) {
    println!("memory benchmark");
    println!(
        "idle: VmRSS after the gateway is ready and {} s without requests",
        idle.as_secs()
    );
    println!(
        "load: {}; half the tasks on GET /api/accounts/{{id}}, half on \
         GET /api/executions/{{id}}",
        shape.describe()
    );
    println!(
        "binaries from {}, RUST_LOG={log_level}",
        common::binary_dir().display()
    );
    common::print_machine();
}

/// Returns the memory of every process, in the order of `pids`.
fn memory_now(pids: &[(&'static str, u32)]) -> anyhow::Result<Vec<Memory>> {
    pids.iter()
        .map(|(_, pid)| common::memory_of(*pid))
        .collect()
}

/// Prints one process's figures: the highest sample under load against idle.
fn print_process(layout: Layout, name: &str, idle: Memory, highest_kib: u64, end: Memory) {
    println!(
        "{name} ({}): idle VmRSS {} MiB, under load highest VmRSS {} MiB, VmRSS at the end {} MiB, \
         VmHWM {} MiB",
        layout.name(),
        bench::number(common::mib(idle.rss_kib)),
        bench::number(common::mib(highest_kib)),
        bench::number(common::mib(end.rss_kib)),
        bench::number(common::mib(end.peak_kib)),
    );
    bench::print_result(
        &format!("memory {name} ({}) VmRSS under load", layout.name()),
        "MiB",
        common::mib(highest_kib),
        "idle",
        common::mib(idle.rss_kib),
    );
}

/// Starts the system in `layout`, measures idle and under load, stops it.
async fn measure(
    layout: Layout,
    db: &TestDb,
    shape: &LoadShape,
    idle: Duration,
    log_level: &str,
) -> anyhow::Result<()> {
    println!("-- {}", layout.name());
    let system = System::start(layout, db, log_level).await?;
    let pids = system.pids();
    tokio::time::sleep(idle).await;
    let idle_memory = memory_now(&pids)?;

    let seeded = common::seed(&system).await?;
    let urls = [
        system.url(&seeded.account_path()),
        system.url(&seeded.execution_path()),
    ];
    let probes = common::http_probes(&urls, shape.connections)?;
    let until = Instant::now() + shape.warmup + shape.duration;
    let (load, highest) = tokio::join!(
        common::run_load(probes, shape),
        common::highest_rss_until(&pids, until)
    );
    let end_memory = memory_now(&pids)?;
    system.stop().await;
    load?.print("load");

    for (index, (name, _)) in pids.iter().enumerate() {
        print_process(
            layout,
            name,
            idle_memory[index],
            highest[index],
            end_memory[index],
        );
    }
    if pids.len() > 1 {
        let sum =
            |memories: &[Memory]| -> u64 { memories.iter().map(|memory| memory.rss_kib).sum() };
        print_process(
            layout,
            "all services",
            Memory {
                rss_kib: sum(&idle_memory),
                peak_kib: 0,
            },
            highest.iter().sum(),
            Memory {
                rss_kib: sum(&end_memory),
                peak_kib: end_memory.iter().map(|memory| memory.peak_kib).sum(),
            },
        );
    }
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let shape = LoadShape::from_env();
    let idle = Duration::from_secs(bench::knob("MEMORY_IDLE_SECONDS", 5));
    let log_level = bench::text_knob("GATEWAY_RUST_LOG", "info");
    print_header(&shape, idle, &log_level);

    let db = TestDb::create().await?;
    let missing = common::missing_service_binaries();
    if missing.is_empty() {
        measure(Layout::Separate, &db, &shape, idle, &log_level).await?;
    } else {
        let names: Vec<String> = missing
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        println!(
            "service binaries not built ({}): measuring the all-in-one cudly process only; \
             build them with `cargo build --release --workspace --bins` or set BENCH_BIN_DIR",
            names.join(", ")
        );
    }
    measure(Layout::AllInOne, &db, &shape, idle, &log_level).await
}
