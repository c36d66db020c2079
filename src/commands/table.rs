//! `strata table [MODEL...]`: the published-style table (layers, parameters, time, accuracy,
//! shallow or deep) from finished runs under runs/.

use std::path::PathBuf;
use strata::runs::{print_table, RunResults};
use strata_models::zoo::{find, zoo};

#[derive(clap::Args)]
pub struct Args {
    /// Networks to include [default: every one that has results].
    pub models: Vec<String>,
    /// Folder that `strata train` wrote its runs into.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Train (with the default recipe) every listed network that has no finished run yet.
    #[arg(long)]
    pub train: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    let names: Vec<String> = if args.models.is_empty() {
        zoo().iter().map(|e| e.name.to_string()).collect()
    } else {
        for m in &args.models {
            find(m)?;
        }
        args.models.clone()
    };
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    // Every folder under runs/ whose name starts with the model (e.g. lenet5-fashion-mnist).
    let folders: Vec<PathBuf> = std::fs::read_dir(&args.runs)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    for name in &names {
        let mut found = false;
        let mut own: Vec<&PathBuf> = folders
            .iter()
            .filter(|p| {
                p.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
                    // Model names hold no '-', so "lenet5-fashion-mnist" belongs to lenet5 alone.
                    f == name || f.starts_with(&format!("{name}-"))
                })
            })
            .collect();
        own.sort();
        for folder in own {
            let path = folder.join("results.json");
            if let Ok(r) = RunResults::load(&path) {
                found = true;
                rows.push(r);
            }
        }
        if !found {
            if args.train {
                crate::commands::train::run(&crate::commands::train::Args {
                    model: name.clone(),
                    epochs: None,
                    batch_size: None,
                    lr: None,
                    step_lr: None,
                    constant_lr: false,
                    optimizer: None,
                    momentum: None,
                    loss: None,
                    seed: 0,
                    device: "auto".into(),
                    dataset: None,
                    data: PathBuf::from("datasets"),
                    out: Some(args.runs.join(name)),
                    resume: false,
                    limit_train: None,
                    limit_test: None,
                    quiet: false,
                    sync_batch_norm: false,
                    comm_timeout: 60.0,
                })?;
                rows.push(RunResults::load(
                    &args.runs.join(name).join("results.json"),
                )?);
            } else {
                missing.push(name.clone());
            }
        }
    }
    if rows.is_empty() {
        return Err(format!(
            "no finished runs under {}; train one with `strata train MODEL` or pass --train",
            args.runs.display()
        ));
    }
    print_table(&rows);
    for r in rows.iter().filter(|r| !r.finished()) {
        println!(
            "note: {} on {} stopped after {} of {} epochs",
            r.model,
            r.dataset,
            r.epochs.len(),
            r.planned_epochs
        );
    }
    if !missing.is_empty() {
        println!(
            "not trained yet: {} (add --train to train them now)",
            missing.join(", ")
        );
    }
    Ok(())
}
