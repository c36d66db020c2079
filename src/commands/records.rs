//! `strata records tables|check`: README.md's and BENCHMARKS.md's tables from the committed
//! records under `results/`, and the check that the documents agree with them.

use std::path::Path;
use std::path::PathBuf;
use strata::journey::{draw_figures, FIGURES};
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
            draw_figures(&journey, &args.figures)?;
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
    let scratch = std::env::temp_dir().join(format!("strata-figures-{}", std::process::id()));
    let drawn = draw_figures(journey, &scratch);
    let mut problems = Vec::new();
    for (name, _) in FIGURES {
        let (committed_path, fresh_path) = (folder.join(name), scratch.join(name));
        let fresh = drawn.clone().and_then(|_| {
            std::fs::read(&fresh_path).map_err(|e| format!("{}: {e}", fresh_path.display()))
        });
        match (std::fs::read(&committed_path), fresh) {
            (_, Err(e)) => problems.push(format!(
                "{}: cannot be drawn: {e}",
                committed_path.display()
            )),
            (Err(e), _) => problems.push(format!("{}: {e}", committed_path.display())),
            (Ok(a), Ok(b)) if a != b => problems.push(format!(
                "{}: differs from the figure the records of {} draw",
                committed_path.display(),
                journey.display()
            )),
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(problems)
}
