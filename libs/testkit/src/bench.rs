//! What every benchmark (a `harness = false` bench target) does the same way: its `main`
//! runs on a multi-threaded runtime, its knobs come from the environment, and its
//! figures are printed as the result lines docs/BENCHMARKS.md quotes.

use std::future::Future;

/// Runs `benchmark` to its end on a multi-threaded runtime, as the services run; a
/// benchmark's `main` is `bench::block_on(run())`.
pub fn block_on<T>(benchmark: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(benchmark)
}

/// Returns the knob `name` from the environment, or `default` when it is unset or not a
/// number.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Returns the text knob `name` from the environment, or `default` when it is unset or
/// blank.
pub fn text_knob(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Returns `value` with as many decimals as its size deserves.
pub fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// Prints one result line: the figure, its baseline and measured / baseline.
pub fn print_result(figure: &str, unit: &str, value: f64, baseline: &str, baseline_value: f64) {
    let ratio = if baseline_value > 0.0 {
        number(value / baseline_value)
    } else {
        "n/a".to_owned()
    };
    println!(
        "result {figure}: {} {unit} | baseline {baseline}: {} {unit} | ratio {ratio}",
        number(value),
        number(baseline_value),
    );
}

/// Prints the machine line every benchmark header carries: the cores, and `sharing`,
/// what shares them besides Postgres and Redis, since a figure means little without it.
pub fn print_machine(sharing: &str) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("machine: {cores} cores shared by {sharing}, Postgres and Redis");
}
