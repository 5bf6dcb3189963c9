//! Command-line flags, and the checked [`Config`] they become.

use std::time::Duration;

use clap::Parser;

use crate::flows::{Flow, NutFormat, Settings};
use crate::site::{LinkScheme, Site};

/// Drives complete SQRL logins against a server and reports throughput,
/// latency per step, errors, and server CPU per login next to the Ed25519
/// verification floor.
#[derive(Debug, Parser)]
#[command(name = "sqrl-bench", version, about, long_about = None)]
pub struct Args {
    /// The site under test: http://HOST:PORT[/PATH] (SSP endpoints live under PATH).
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// ssp: /nut.sqrl, query, ident, poll /pag.sqrl (any SSP server).
    /// page: our login page, its event stream, collect.
    #[arg(long, value_enum, default_value = "ssp")]
    pub flow: Flow,

    /// Login loops running at once (each with its own browser and phone connections).
    #[arg(short, long, default_value_t = 16)]
    pub concurrency: usize,

    /// How long to measure, e.g. 20s, 500ms, 2m (default 20s unless --logins).
    #[arg(short, long, value_parser = parse_duration, conflicts_with = "logins")]
    pub duration: Option<Duration>,

    /// Measure this many logins instead of a duration.
    #[arg(short = 'n', long)]
    pub logins: Option<u64>,

    /// Virtual phones, each its own identity (default: one per loop). A
    /// phone's first login creates its account; later ones are returning.
    #[arg(long)]
    pub phones: Option<usize>,

    /// Unmeasured logins before the measured window (connections, caches), e.g. 2s; 0 for none.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,

    /// Start at most this many logins per second in all (default: each loop
    /// starts its next login as soon as the last one ended).
    #[arg(long, value_name = "LOGINS_PER_SECOND")]
    pub rate: Option<f64>,

    /// The server's process id: report its CPU time per login (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// The SQRL client endpoint, under URL's path.
    #[arg(long, default_value = "/cli.sqrl")]
    pub cli_path: String,

    /// Scheme of the SQRL links built for /nut.sqrl nuts (requests always go to --url over HTTP).
    #[arg(long, value_enum, default_value = "qrl")]
    pub link_scheme: LinkScheme,

    /// The host (and port) named in built SQRL links when the site's public
    /// name differs from --url's (the host is part of the site key).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub link_host: Option<String>,

    /// Put x=N in built SQRL links (the path becomes part of the site key).
    #[arg(long, value_name = "N")]
    pub path_extension: Option<usize>,

    /// How /nut.sqrl and /pag.sqrl are asked to answer.
    #[arg(long, value_enum, default_value = "form")]
    pub nut_format: NutFormat,

    /// Pause between /pag.sqrl polls while the login is pending (the first
    /// poll goes out right after the ident reply).
    #[arg(long, value_parser = parse_duration, default_value = "20ms")]
    pub poll_interval: Duration,

    /// Longest wait for one request, one page event, or a login's /pag.sqrl result.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// SSP flow: also GET the URL /pag.sqrl returns (the site's own login completion).
    #[arg(long)]
    pub follow: bool,

    /// Ed25519 verifications timed for the floor.
    #[arg(long, default_value_t = 20_000)]
    pub floor_iterations: u32,

    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// When the measured window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Logins start until this much time has passed (those running then finish).
    After(Duration),
    /// This many logins in all.
    Logins(u64),
}

/// A checked run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What every login shares (site, flow, timeouts).
    pub settings: Settings,
    /// Login loops at once.
    pub concurrency: usize,
    /// When the measured window ends.
    pub stop: Stop,
    /// Identities (at least one per loop).
    pub phones: usize,
    /// Unmeasured logins first, for this long.
    pub warmup: Duration,
    /// Logins started per second in all, if paced.
    pub rate: Option<f64>,
    /// The server process to measure CPU of.
    pub server_pid: Option<u32>,
    /// Ed25519 verifications timed for the floor.
    pub floor_iterations: u32,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Config {
    /// A configuration with the defaults of the command line: `concurrency`
    /// loops, one phone each, 20 s after a 2 s warm-up.
    pub fn new(site: Site, flow: Flow, concurrency: usize) -> Self {
        Self {
            settings: Settings {
                site,
                flow,
                timeout: Duration::from_secs(10),
                poll_interval: Duration::from_millis(20),
                follow: false,
                nut_format: NutFormat::Form,
            },
            concurrency,
            stop: Stop::After(Duration::from_secs(20)),
            phones: concurrency,
            warmup: Duration::from_secs(2),
            rate: None,
            server_pid: None,
            floor_iterations: 20_000,
            progress: false,
        }
    }

    /// Checks what flags alone cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".to_owned());
        }
        if self.phones < self.concurrency {
            return Err(format!(
                "--phones ({}) must be at least --concurrency ({}): a phone does one login at a time",
                self.phones, self.concurrency
            ));
        }
        match self.stop {
            Stop::After(duration) if duration.is_zero() => {
                return Err("--duration must be longer than zero".to_owned());
            }
            Stop::Logins(0) => return Err("--logins must be at least 1".to_owned()),
            _ => {}
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err("--rate must be a positive number".to_owned());
        }
        if self.settings.timeout.is_zero() {
            return Err("--timeout must be longer than zero".to_owned());
        }
        if self.settings.poll_interval.is_zero() {
            return Err("--poll-interval must be longer than zero".to_owned());
        }
        if self.settings.follow && self.settings.flow == Flow::Page {
            return Err("--follow is for the ssp flow (the page flow always collects)".to_owned());
        }
        Ok(())
    }
}

impl Args {
    /// The checked configuration, or what is wrong with the flags.
    pub fn into_config(self) -> Result<Config, String> {
        let mut site = Site::parse(&self.url)
            .and_then(|site| site.with_cli_path(&self.cli_path))
            .map_err(|e| e.to_string())?
            .with_link_scheme(self.link_scheme)
            .with_path_extension(self.path_extension);
        if let Some(host) = &self.link_host {
            site = site.with_link_authority(host).map_err(|e| e.to_string())?;
        }
        let mut config = Config::new(site, self.flow, self.concurrency);
        config.stop = match (self.logins, self.duration) {
            (Some(logins), _) => Stop::Logins(logins),
            (None, Some(duration)) => Stop::After(duration),
            (None, None) => Stop::After(Duration::from_secs(20)),
        };
        config.phones = self.phones.unwrap_or(self.concurrency);
        config.warmup = self.warmup;
        config.rate = self.rate;
        config.server_pid = self.server_pid;
        config.floor_iterations = self.floor_iterations.max(1);
        config.progress = !self.quiet;
        config.settings.timeout = self.timeout;
        config.settings.poll_interval = self.poll_interval;
        config.settings.follow = self.follow;
        config.settings.nut_format = self.nut_format;
        config.check()?;
        Ok(config)
    }
}

/// Parses `20s`, `1.5s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 20s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Config, String> {
        let args =
            Args::try_parse_from(["sqrl-bench"].iter().chain(list)).map_err(|e| e.to_string())?;
        args.into_config()
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn defaults_and_overrides() {
        let config = args(&["--url", "http://127.0.0.1:8080", "-c", "4"]).unwrap();
        assert_eq!(config.phones, 4);
        assert_eq!(config.stop, Stop::After(Duration::from_secs(20)));
        assert_eq!(config.settings.flow, Flow::Ssp);
        let config = args(&[
            "--url",
            "http://127.0.0.1:8080",
            "--logins",
            "40",
            "--flow",
            "page",
            "--phones",
            "100",
        ])
        .unwrap();
        assert_eq!(config.stop, Stop::Logins(40));
        assert_eq!(config.phones, 100);
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(args(&["--url", "https://example.com"]).is_err());
        assert!(args(&["--url", "http://h", "-c", "0"]).is_err());
        assert!(args(&["--url", "http://h", "-c", "8", "--phones", "2"]).is_err());
        assert!(args(&["--url", "http://h", "--rate", "-1"]).is_err());
        assert!(args(&["--url", "http://h", "--logins", "0"]).is_err());
        assert!(args(&["--url", "http://h", "--logins", "5", "--duration", "2s"]).is_err());
        assert!(args(&["--url", "http://h", "--flow", "page", "--follow"]).is_err());
        assert!(args(&["--url", "http://h", "--cli-path", "cli"]).is_err());
    }
}
