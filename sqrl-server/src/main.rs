//! `sqrl-server`: parse configuration, set up logging, run until SIGINT/SIGTERM;
//! or, given a command (`sqrl-server client new ...`), run it and exit.

use std::process::ExitCode;

use sqrl_server::config::{Config, ConfigError, Settings};
use sqrl_server::oidc::register;

/// See the workspace manifest: the request path allocates many small buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tasks a worker runs before it looks for new socket events again (tokio's
/// default is 61). A busy worker serves the requests that became readable
/// since it last looked in the order they did; looking more often keeps that
/// order closer to their arrival, so fewer requests wait through several
/// rounds of others. Under a load that saturates the server (`sqrl-bench`,
/// 64 loops on one core; the README's benchmark section has the runs) the
/// slowest requests come back sooner at the same CPU per login: SSP-API p99
/// per request ~7-9 ms instead of ~9-11 ms. Looking more often still (16,
/// 8) gained little more there and delayed the login page's event stream,
/// which arrives on a new connection, by more.
const EVENT_INTERVAL: u32 = 31;

fn main() -> ExitCode {
    // The settings come first: they say how to log. Until then, a refusal
    // goes to stderr.
    let settings = match Settings::from_args(std::env::args_os()) {
        Ok(settings) => settings,
        // `--help`, `--version`, or a flag clap refused: clap prints it.
        Err(ConfigError::Args(error)) => error.exit(),
        Err(error) => return refused(&error),
    };
    // An operator's task runs without logging, so nothing it handles (a
    // client secret) can reach a log.
    if let Some(command) = &settings.command {
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        return match register::run(
            command,
            &mut stdin.lock(),
            &mut stdout.lock(),
            &mut stderr.lock(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => refused(&error),
        };
    }
    let config = match Config::from_settings(settings) {
        Ok(config) => config,
        Err(error) => return refused(&error),
    };
    sqrl_server::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .event_interval(EVENT_INTERVAL)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sqrl-server: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sqrl_server::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sqrl-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Says why the input was refused; exit status 2, as clap's refusals.
fn refused(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("sqrl-server: {error}");
    ExitCode::from(2)
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
