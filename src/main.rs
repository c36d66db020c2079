//! The `strata` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

/// strata: a from-scratch deep-learning engine with hand-written CPU kernels.
#[derive(Parser)]
#[command(name = "strata", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every differentiable op's backward pass against central differences.
    Gradcheck(commands::gradcheck::Args),
    /// Measure kernel speed and print a table.
    Bench(commands::bench::Args),
    /// List the devices strata can run on.
    Devices,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gradcheck(args) => commands::gradcheck::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Devices => commands::devices::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("strata: {message}");
            ExitCode::FAILURE
        }
    }
}
