//! Log output: lines for a person to read, or one JSON object per line for
//! a log collector. `SQRL_LOG` (an `EnvFilter` directive, `info` by default)
//! picks what is logged.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The target of the one line logged per HTTP request, so that an operator
/// can route or silence it alone (`SQRL_LOG=info,sqrl_server::access=off`).
pub const ACCESS_TARGET: &str = "sqrl_server::access";

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SQRL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        // Flattened: a line's fields sit beside `message`, where collectors
        // look for them, rather than under a nested `fields` object.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
