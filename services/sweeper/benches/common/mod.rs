//! Helpers shared by the sweeper benchmarks: knobs and result lines.

/// Returns the knob `name` from the environment, or `default`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Returns the text knob `name` from the environment, or `default`.
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

/// Prints the machine line every benchmark header carries.
pub fn print_machine() {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("machine: {cores} cores shared by this process, Postgres and Redis");
}

/// Returns the Redis the benchmarks use: `REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    text_knob("REDIS_URL", "redis://127.0.0.1:6379/")
}
