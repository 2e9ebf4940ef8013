//! Result tables: printed to stdout as soon as each is complete, and appended to the report
//! files (the run's `out/` dir and, with `--share`, `/mnt/share`), so a timeout still leaves
//! every finished table behind.

use std::{fmt::Write as _, io::Write, path::PathBuf, time::Duration};

/// One markdown table.
#[derive(Debug, Clone)]
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    /// A table titled `title` with these columns.
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row (cells beyond the header are kept; missing ones are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rows so far.
    pub fn rows_mut(&mut self) -> &mut Vec<Vec<String>> {
        &mut self.rows
    }

    /// Adds a line printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The markdown text.
    pub fn render(&self) -> String {
        let mut s = format!("\n### {}\n\n| {} |\n|", self.title, self.header.join(" | "));
        for (i, _) in self.header.iter().enumerate() {
            s.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        s.push('\n');
        for row in &self.rows {
            let mut cells = row.clone();
            cells.resize(self.header.len().max(cells.len()), String::new());
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        for note in &self.notes {
            let _ = write!(s, "\n{note}\n");
        }
        s
    }
}

/// Where tables go.
#[derive(Debug, Default)]
pub struct Sink {
    files: Vec<PathBuf>,
}

impl Sink {
    /// Writes to `files` (each created or truncated now) besides stdout.
    pub fn new(files: Vec<PathBuf>) -> Self {
        for f in &files {
            let _ = std::fs::write(f, "");
        }
        Self { files }
    }

    /// Prints and appends free text.
    pub fn text(&self, text: &str) {
        println!("{text}");
        for f in &self.files {
            if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(f) {
                let _ = writeln!(file, "{text}");
            }
        }
    }

    /// Prints and appends a table.
    pub fn table(&self, table: &Table) {
        self.text(&table.render());
    }

    /// Writes `text` to a file `name` beside each report file (not printed): logs kept for
    /// reading after the run.
    pub fn keep(&self, name: &str, text: &str) {
        for f in &self.files {
            if let Some(dir) = f.parent() {
                let _ = std::fs::write(dir.join(name), text);
            }
        }
    }
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

/// A ratio `a / b` as `1.23×`, or `–` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "–".into();
    }
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

/// `min / median / max` of some durations in milliseconds (`–` when empty).
pub fn spread(samples: &[Duration]) -> String {
    let (Some(min), Some(max)) = (samples.iter().min(), samples.iter().max()) else {
        return "–".into();
    };
    format!("{} / {} / {}", ms(*min), ms(median(samples)), ms(*max))
}

/// The verdict of `ratio` against the target `target` (`≤ target`): `yes`, or `NO (+n.n%)`.
pub fn verdict(ratio: f64, target: f64) -> String {
    if ratio <= target {
        "yes".into()
    } else {
        format!("NO (+{}%)", tenths_up(ratio / target - 1.0))
    }
}

/// The verdict of `ratio` against the target `target` (`≥ target`): `yes`, or `NO (−n.n%)`.
pub fn verdict_at_least(ratio: f64, target: f64) -> String {
    if ratio >= target {
        "yes".into()
    } else {
        format!("NO (−{}%)", tenths_up(1.0 - ratio / target))
    }
}

/// A miss `fraction` (above 0) as a percentage to a tenth, rounded up, so a ratio just past its
/// target never prints as missing it by `0.0%`.
pub fn tenths_up(fraction: f64) -> String {
    format!("{:.1}", (fraction * 1000.0).ceil() / 10.0)
}

/// The median of some durations (zero when empty).
pub fn median(samples: &[Duration]) -> Duration {
    let secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(median_of(&secs))
}

/// The median of some figures (zero when empty; the mean of the middle two of an even count).
pub fn median_of(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        // Exact: these figures and their halves are representable in binary.
        assert_eq!(median_of(&[]).to_bits(), 0.0f64.to_bits());
        assert_eq!(median_of(&[3.0, 1.0, 2.0]).to_bits(), 2.0f64.to_bits());
        assert_eq!(median_of(&[4.0, 1.0, 3.0, 2.0]).to_bits(), 2.5f64.to_bits());
        assert_eq!(
            median(&[Duration::from_millis(1500), Duration::from_millis(500)]),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_miss_never_prints_as_zero() {
        assert_eq!(verdict(1.2, 1.2), "yes");
        assert_eq!(verdict(1.2001, 1.2), "NO (+0.1%)");
        assert_eq!(verdict_at_least(0.95, 0.95), "yes");
        assert_eq!(verdict_at_least(0.9499, 0.95), "NO (−0.1%)");
        assert_eq!(verdict_at_least(0.9456, 0.95), "NO (−0.5%)");
    }
}
