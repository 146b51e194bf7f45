//! What the CLI prints: human-readable tables by default, the server's JSON with
//! `--json`. Every command writes through [`Output`], so tests capture it in memory.

use std::io::Write;

use comfy_table::{Cell, Row, Table, presets};
use serde_json::Value;

use super::exit::{CliError, CliResult};

/// Where a command writes, and in which form.
pub struct Output<'a> {
    writer: &'a mut (dyn Write + Send),
    json: bool,
}

impl<'a> Output<'a> {
    pub fn new(writer: &'a mut (dyn Write + Send), json: bool) -> Self {
        Self { writer, json }
    }

    /// Returns whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Returns the writer itself (completion scripts).
    pub fn writer(&mut self) -> &mut (dyn Write + Send) {
        &mut *self.writer
    }

    /// Prints `value` as indented JSON.
    pub fn json(&mut self, value: &Value) -> CliResult<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|error| CliError::failure(format!("cannot encode json: {error}")))?;
        self.line(&text)
    }

    /// Prints `value` as JSON on one line (streams of events).
    pub fn json_line(&mut self, value: &Value) -> CliResult<()> {
        let text = serde_json::to_string(value)
            .map_err(|error| CliError::failure(format!("cannot encode json: {error}")))?;
        self.line(&text)
    }

    /// Prints one line.
    pub fn line(&mut self, text: &str) -> CliResult<()> {
        writeln!(self.writer, "{text}").map_err(write_error)
    }

    /// Prints text as it is.
    pub fn raw(&mut self, text: &str) -> CliResult<()> {
        self.writer.write_all(text.as_bytes()).map_err(write_error)
    }

    pub fn table(&mut self, table: &Table) -> CliResult<()> {
        self.line(&table.to_string())
    }

    pub fn flush(&mut self) -> CliResult<()> {
        self.writer.flush().map_err(write_error)
    }
}

fn write_error(error: std::io::Error) -> CliError {
    CliError::failure(format!("cannot write the output: {error}"))
}

/// Returns an empty table with these column titles.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    table.set_header(row(headers.iter().map(|header| (*header).to_owned())));
    table
}

/// Returns a table of `name | value` lines (one object shown in detail).
pub fn details(lines: Vec<(&str, String)>) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    for (name, value) in lines {
        table.add_row(row([name.to_owned(), value]));
    }
    table
}

/// Returns a table row of these cells.
pub fn row(cells: impl IntoIterator<Item = String>) -> Row {
    let mut built = Row::new();
    for cell in cells {
        built.add_cell(Cell::new(cell));
    }
    built
}

/// Returns a JSON value as table text: strings as they are, `-` for null or absent,
/// `yes`/`no` for booleans, lists joined by commas.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        // serde_json writes a whole float as `100.0`; a table shows `100`.
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 1e15 => {
                format!("{float:.0}")
            }
            _ => number.to_string(),
        },
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => value.to_string(),
    }
}

/// Returns a USD amount as `$1,234.50`, or `-` when absent.
pub fn money(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".to_owned(), usd)
}

/// Returns `amount` as `$1,234.50` ([`cudly_vocabulary::format_usd`]).
pub fn usd(amount: f64) -> String {
    cudly_vocabulary::format_usd(amount)
}

/// Returns an RFC 3339 UTC time to the second (`2026-11-23 10:00:00Z`), or `-`.
pub fn time(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return "-".to_owned();
    };
    // The server writes `2026-11-23T10:00:00.123456Z`; anything else is shown as is.
    match (text.get(..10), text.get(10..11), text.get(11..19)) {
        (Some(date), Some("T"), Some(clock)) if text.ends_with('Z') => format!("{date} {clock}Z"),
        _ => text.to_owned(),
    }
}

/// Returns the array at `value[key]`, or an empty slice.
pub fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_are_grouped_dollars_and_cents() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(4938.0), "$4,938.00");
        assert_eq!(usd(1234567.891), "$1,234,567.89");
        assert_eq!(usd(-12.5), "-$12.50");
        assert_eq!(money(&Value::Null), "-");
    }

    #[test]
    fn values_become_cell_text() {
        assert_eq!(text(&json!(null)), "-");
        assert_eq!(text(&json!(true)), "yes");
        assert_eq!(text(&json!(["a", "b"])), "a, b");
        assert_eq!(text(&json!(100.0)), "100");
        assert_eq!(text(&json!(2.5)), "2.5");
        assert_eq!(
            time(&json!("2026-11-23T10:00:00.123456Z")),
            "2026-11-23 10:00:00Z"
        );
    }

    #[test]
    fn a_table_shows_its_cells() {
        let mut shown = table(&["ID", "NAME"]);
        shown.add_row(row(["1".to_owned(), "Prod-US".to_owned()]));
        let printed = shown.to_string();
        assert!(
            printed.contains("NAME") && printed.contains("Prod-US"),
            "{printed}"
        );
    }
}
