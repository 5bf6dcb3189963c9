//! `sqrl-server`: parse configuration, set up logging, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use sqrl_server::config::{Config, ConfigError};

fn main() -> ExitCode {
    // The settings come first: they say how to log. Until then, a refusal
    // goes to stderr.
    let config = match Config::load(std::env::args_os()) {
        Ok(config) => config,
        // `--help`, `--version`, or a flag clap refused: clap prints it.
        Err(ConfigError::Args(error)) => error.exit(),
        Err(error) => {
            eprintln!("sqrl-server: {error}");
            return ExitCode::from(2);
        }
    };
    sqrl_server::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
