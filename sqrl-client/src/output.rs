//! Human or JSON output. Each command builds one JSON value and a human text;
//! `--json` prints the former on stdout, otherwise the latter is printed.
//! Progress and questions go to stderr, so stdout stays clean for scripts.

use std::io::{self, IsTerminal as _, Write as _};

use crate::error::{Error, Result};

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Human text, or JSON when `json` is set.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Whether progress bars may be drawn (a terminal on stderr, and not JSON mode).
    pub fn show_progress(&self) -> bool {
        !self.json && io::stderr().is_terminal()
    }

    /// Prints a result: `value` as one JSON line, or `human` as text.
    pub fn result(&self, value: &serde_json::Value, human: &str) -> Result<()> {
        let mut stdout = io::stdout().lock();
        if self.json {
            let text = serde_json::to_string(value)
                .map_err(|e| Error::Internal(format!("JSON output: {e}")))?;
            writeln!(stdout, "{text}").map_err(Error::Output)?;
        } else if !human.is_empty() {
            if human.ends_with('\n') {
                write!(stdout, "{human}").map_err(Error::Output)?;
            } else {
                writeln!(stdout, "{human}").map_err(Error::Output)?;
            }
        }
        stdout.flush().map_err(Error::Output)
    }

    /// A status line for humans, on stderr (never in JSON mode).
    pub fn note(&self, text: &str) {
        if !self.json {
            let _ = writeln!(io::stderr(), "{text}");
        }
    }

    /// A warning, on stderr in both modes.
    pub fn warn(&self, text: &str) {
        let _ = writeln!(io::stderr(), "warning: {text}");
    }
}

/// A text progress bar on stderr for EnScrypt runs.
#[derive(Debug)]
pub struct ProgressBar {
    label: String,
    enabled: bool,
    last_percent: Option<u32>,
}

impl ProgressBar {
    /// A bar with a label; draws nothing unless `enabled`.
    pub fn new(label: &str, enabled: bool) -> Self {
        Self {
            label: label.to_owned(),
            enabled,
            last_percent: None,
        }
    }

    /// Redraws the bar for a fraction in 0.0..=1.0.
    pub fn update(&mut self, fraction: f64) {
        if !self.enabled {
            return;
        }
        const WIDTH: usize = 30;
        let fraction = fraction.clamp(0.0, 1.0);
        // Whole percent is all a user can see; skip redundant redraws.
        let percent = (fraction * 100.0).round() as u32;
        if self.last_percent == Some(percent) {
            return;
        }
        self.last_percent = Some(percent);
        let filled = (fraction * WIDTH as f64).round() as usize;
        let bar: String = "#".repeat(filled) + &" ".repeat(WIDTH - filled.min(WIDTH));
        let _ = write!(io::stderr(), "\r{} [{bar}] {percent:3}%", self.label);
        let _ = io::stderr().flush();
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_percent.is_some() {
            let _ = writeln!(io::stderr());
        }
        self.last_percent = None;
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.finish();
    }
}
