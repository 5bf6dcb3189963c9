//! `sqrl-bench`: flags in, report out. Exit status: 0 when logins
//! succeeded, 1 when the run could not be made (server unreachable, process
//! not found), 2 for bad arguments, 3 when no login succeeded.

use std::process::ExitCode;

use clap::Parser;
use sqrl_bench::args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("sqrl-bench: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sqrl-bench: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let report = match runtime.block_on(sqrl_bench::run(&config)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("sqrl-bench: {error}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("sqrl-bench: cannot write JSON: {error}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", report.to_text(&config));
    }
    if report.succeeded == 0 {
        eprintln!("sqrl-bench: no login succeeded");
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
