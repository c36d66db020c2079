//! The `strata` command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

// Training allocates and frees many activation-sized buffers per step; mimalloc keeps them in
// its own pages instead of returning them to the kernel, which avoids a page fault storm.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// strata: a from-scratch deep-learning engine with hand-written CPU kernels.
#[derive(Parser)]
#[command(name = "strata", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network of the zoo on real data with its published recipe.
    Train(commands::train::Args),
    /// Replay the ten rounds of "The journey of a DNN model" and compare them with the
    /// published figures: one table and two figures.
    Journey(commands::journey::Args),
    /// Evaluate saved weights on the test set.
    Eval(commands::eval::Args),
    /// Show a network's layers, output shapes and parameter counts.
    Summary(commands::summary::Args),
    /// Print the table of finished runs: layers, parameters, time, accuracy, shallow/deep.
    Table(commands::table::Args),
    /// List the networks of the zoo with their recipes.
    List,
    /// Download and verify MNIST and Fashion-MNIST.
    Data(commands::data::Args),
    /// Check every differentiable op's backward pass against central differences.
    Gradcheck(commands::gradcheck::Args),
    /// Work an op through step by step on a small input: forward, output size, backward.
    Explain(commands::explain::Args),
    /// Measure kernel speed and print a table.
    Bench(commands::bench::Args),
    /// List the devices strata can run on.
    Devices,
    /// Regenerate README.md's and BENCHMARKS.md's tables from the records in results/, or check
    /// that they agree.
    Records(commands::records::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The command runs on a worker of rayon's pool rather than on the main thread, so each
    // parallel op is a fork inside the pool (this worker takes its share at once) instead of
    // a job handed to the pool while the main thread sleeps until it is done: a wake-up and
    // two context switches per op, a sixth of a small network's training step. The workers
    // get the main thread's usual 8 MiB of stack. `RAYON_NUM_THREADS` still sets their number.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global()
    {
        eprintln!("strata: cannot start the worker threads: {e}");
        return ExitCode::FAILURE;
    }
    let result = stdout_failure_as_error(move || {
        rayon::scope(|_| match cli.command {
            Command::Train(args) => commands::train::run(&args),
            Command::Journey(args) => commands::journey::run(&args),
            Command::Eval(args) => commands::eval::run(&args),
            Command::Summary(args) => commands::summary::run(&args),
            Command::Table(args) => commands::table::run(&args),
            Command::List => commands::list::run(),
            Command::Data(args) => commands::data::run(&args),
            Command::Gradcheck(args) => commands::gradcheck::run(&args),
            Command::Explain(args) => commands::explain::run(&args),
            Command::Bench(args) => commands::bench::run(&args),
            Command::Devices => commands::devices::run(),
            Command::Records(args) => commands::records::run(&args),
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Empty: a data-parallel rank other than 0, whose rank 0 reports the same failure.
            if !message.is_empty() {
                eprintln!("strata: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What `println!` panics with when standard output cannot be written (a full disk, `> /dev/full`,
/// a closed pipe), without the prefix: the operating system's reason.
fn stdout_failure(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())?;
    message.strip_prefix("failed printing to stdout: ")
}

/// Runs `command`, turning a failure to write standard output into an error message like any
/// other (instead of a panic and a backtrace hint). Every other panic goes on as before.
fn stdout_failure_as_error(command: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_failure(info.payload()).is_none() {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)) {
        Ok(result) => result,
        Err(payload) => match stdout_failure(payload.as_ref()) {
            Some(reason) => Err(format!("cannot write to standard output: {reason}")),
            None => std::panic::resume_unwind(payload),
        },
    }
}
