//! `strata records tables|check`: README.md's and BENCHMARKS.md's tables from the committed
//! records under `results/`, and the check that the documents agree with them.

use std::path::{Path, PathBuf};
use strata::journey::figures;
use strata::records::check::{problems, regenerate};

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    action: Action,
    /// The folder of records.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// The documents whose generated tables are read or rewritten.
    #[arg(long, value_delimiter = ',', default_value = "README.md,BENCHMARKS.md")]
    documents: Vec<PathBuf>,
    /// The folder of the figures the documents show (the journey's, drawn from
    /// `RESULTS/journey/`).
    #[arg(long, default_value = "docs")]
    figures: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    /// Rewrite every generated table of the documents, and the figures, from the records.
    Tables,
    /// Fail if a generated table or figure differs from its records, or a table written by
    /// hand holds a figure (a figure with no record behind it).
    Check,
}

pub fn run(args: &Args) -> Result<(), String> {
    let mut all = Vec::new();
    for path in &args.documents {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        match args.action {
            Action::Tables => {
                let new = regenerate(&text, &args.results)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if new != text {
                    strata::nn::checkpoint::write_atomically(path, new.as_bytes())
                        .map_err(|e| e.to_string())?;
                    println!(
                        "{}: tables rewritten from {}",
                        path.display(),
                        args.results.display()
                    );
                } else {
                    println!("{}: tables already agree with the records", path.display());
                }
            }
            Action::Check => {
                let name = path.display().to_string();
                all.extend(problems(&name, &text, &args.results)?);
            }
        }
    }
    let journey = args.results.join("journey");
    match args.action {
        Action::Tables => {
            std::fs::create_dir_all(&args.figures)
                .map_err(|e| format!("{}: {e}", args.figures.display()))?;
            for (name, svg) in figures(&journey)? {
                strata::nn::checkpoint::write_atomically(&args.figures.join(name), svg.as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            println!(
                "{}: figures drawn from {}",
                args.figures.display(),
                journey.display()
            );
        }
        Action::Check => all.extend(figure_problems(&journey, &args.figures)?),
    }
    if all.is_empty() {
        if let Action::Check = args.action {
            println!(
                "every table of {} agrees with the records in {}",
                args.documents
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                args.results.display()
            );
        }
        return Ok(());
    }
    Err(format!(
        "{} problem(s); `strata records tables` rewrites the tables from the records:\n  {}",
        all.len(),
        all.join("\n  ")
    ))
}

/// Each committed figure of `folder` that differs from what the records of `journey` draw.
fn figure_problems(journey: &Path, folder: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (name, svg) in figures(journey)? {
        let path = folder.join(name);
        match std::fs::read(&path) {
            Err(e) => problems.push(format!("{}: {e}", path.display())),
            Ok(committed) if committed != svg.as_bytes() => problems.push(format!(
                "{}: differs from the figure the records of {} draw",
                path.display(),
                journey.display()
            )),
            Ok(_) => {}
        }
    }
    Ok(problems)
}
