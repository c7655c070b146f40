//! How the admin commands print. A read prints a table for a person, `--json` as the
//! API answered, or `--csv` for a spreadsheet; a write prints one sentence that says
//! what it did, in words.

use std::io::Write;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::Output;

/// Rows to print: a header and lines of cells.
pub struct Rows {
    header: Vec<&'static str>,
    lines: Vec<Vec<String>>,
}

impl Rows {
    /// Rows under `header`.
    pub fn new(header: &[&'static str]) -> Rows {
        Rows {
            header: header.to_vec(),
            lines: Vec::new(),
        }
    }

    /// One row per field of one record: `field, value`.
    pub fn fields(fields: Vec<(&'static str, String)>) -> Rows {
        let mut rows = Rows::new(&["field", "value"]);
        for (name, value) in fields {
            rows.push(vec![name.to_owned(), value]);
        }
        rows
    }

    /// Adds a line.
    pub fn push(&mut self, line: Vec<String>) {
        self.lines.push(line);
    }

    /// The rows as a table.
    pub fn table(&self) -> Table {
        let mut table = Table::new();
        table
            .load_preset(UTF8_BORDERS_ONLY)
            .set_header(self.header.clone());
        for line in &self.lines {
            table.add_row(line.clone());
        }
        table
    }
}

/// Prints a read: `answer` as JSON with `--json`, else `rows` as CSV or a table; a
/// table may follow a few lines of `summary`.
pub fn print(
    output: Output,
    answer: &impl Serialize,
    summary: &[String],
    rows: &Rows,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if output.json {
        serde_json::to_writer_pretty(&mut out, answer)?;
        writeln!(out)?;
    } else if output.csv {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record(&rows.header)?;
        for line in &rows.lines {
            csv.write_record(line)?;
        }
        csv.flush()?;
    } else {
        for line in summary {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "{}", rows.table())?;
    }
    Ok(())
}

/// Prints what a write did: one sentence (or a few lines) on standard output.
pub fn say(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// Signed credits as people write them: `+30`, `−30` (a minus sign), `0`.
pub fn signed(amount: i64) -> String {
    match amount {
        0 => "0".to_owned(),
        n if n > 0 => format!("+{n}"),
        n => format!("\u{2212}{}", n.unsigned_abs()),
    }
}

/// An instant, or `-` for none.
pub fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.to_string())
}

/// A value, or nothing for none.
pub fn or_blank(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_credits_read_as_people_write_them() {
        assert_eq!(signed(30), "+30");
        assert_eq!(signed(-30), "\u{2212}30");
        assert_eq!(signed(0), "0");
        assert_eq!(signed(i64::MIN), "\u{2212}9223372036854775808");
    }
}
