//! What a finished training run leaves behind: `results.json` and `curves.svg`.

use serde::{Deserialize, Serialize};
use std::path::Path;
use strata_models::train::EpochReport;

/// Everything `strata table` needs about a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResults {
    /// Zoo name of the network, e.g. `lenet5`.
    pub model: String,
    /// Dataset name as [`crate::datasets::DatasetChoice::name`] gives it.
    pub dataset: String,
    /// Device the run trained on, e.g. `cpu`.
    pub device: String,
    /// Worker threads of the rayon pool (of each rank).
    pub threads: usize,
    /// Data-parallel ranks (processes) that trained together; 1 without MPI.
    #[serde(default = "one")]
    pub ranks: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Trainable parameters of the network.
    pub parameters: usize,
    /// Layers with weights (see [`strata_models::zoo::ZooEntry::weight_layers`]).
    pub weight_layers: usize,
    /// Hidden layers (see [`strata_models::zoo::ZooEntry::hidden_layers`]).
    pub hidden_layers: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// The optimizer's short name (`sgd`, `adam`, `adamw`).
    pub optimizer: String,
    /// Epochs the run was asked for; fewer are recorded while it runs or if it stopped early.
    pub planned_epochs: usize,
    /// One report per completed epoch, in order.
    pub epochs: Vec<EpochReport>,
    /// The published test accuracy, when the run used the published dataset.
    pub published_accuracy: Option<f32>,
    /// The command, commit, machine and date of the latest invocation that wrote this file.
    #[serde(default)]
    pub provenance: Option<crate::records::Provenance>,
}

fn one() -> usize {
    1
}

impl RunResults {
    /// Best test accuracy over the epochs, and the epoch that reached it.
    pub fn best(&self) -> Option<(f32, usize)> {
        self.epochs
            .iter()
            .map(|e| (e.test_accuracy, e.epoch))
            .fold(None, |best, e| match best {
                Some((a, _)) if a >= e.0 => best,
                _ => Some(e),
            })
    }

    /// Training time of all epochs plus one test pass, as the published table measures it.
    pub fn published_style_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.train_seconds).sum::<f64>()
            + self.epochs.last().map_or(0.0, |e| e.test_seconds)
    }

    /// Whether every planned epoch has been recorded.
    pub fn finished(&self) -> bool {
        self.epochs.len() >= self.planned_epochs
    }

    /// Writes the results as pretty-printed JSON, atomically (a crash never leaves half a file).
    /// The error message names the problem.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        strata_nn::checkpoint::write_atomically(path, text.as_bytes()).map_err(|e| e.to_string())
    }

    /// Reads a file written by [`RunResults::save`]. The error names the file and says whether it
    /// could not be read or is not a results file.
    pub fn load(path: &Path) -> Result<RunResults, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a strata results file: {e}", path.display()))
    }

    /// [`RunResults::load`] of a record: a run that finished every planned epoch and says where
    /// and when it ran.
    pub fn load_record(path: &Path) -> Result<RunResults, String> {
        let run = RunResults::load(path)?;
        if !run.finished() {
            return Err(format!(
                "{}: the run recorded {} of its {} epochs",
                path.display(),
                run.epochs.len(),
                run.planned_epochs
            ));
        }
        if run.provenance.is_none() {
            return Err(format!("{}: the run has no provenance", path.display()));
        }
        Ok(run)
    }
}

/// Loss and accuracy per epoch as an SVG with two panels.
pub fn plot_curves(results: &RunResults, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let fail =
        |e: &dyn std::fmt::Display| format!("{}: cannot draw the curves: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(500);
    let epochs = results.epochs.len().max(1) as f32;
    let x_range = 1f32..epochs.max(1.5);
    // A diverged run has infinite or NaN losses: they are left out of the plot (an infinite
    // axis range cannot be drawn), and the text output reports them instead.
    let series = |pick: fn(&EpochReport) -> f32| -> Vec<(f32, f32)> {
        results
            .epochs
            .iter()
            .map(|e| (e.epoch as f32, pick(e)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    type Pick = fn(&EpochReport) -> f32;
    let train_and_test = |train: Pick, test: Pick| [("train", train), ("test", test)];
    let panels = [
        (
            &left,
            "loss",
            train_and_test(|e| e.train_loss, |e| e.test_loss),
        ),
        (
            &right,
            "accuracy (%)",
            train_and_test(|e| e.train_accuracy, |e| e.test_accuracy),
        ),
    ];
    for (area, label, lines) in panels {
        let values: Vec<f32> = lines
            .iter()
            .flat_map(|(_, f)| series(*f))
            .map(|(_, y)| y)
            .collect();
        let lo = values.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = values.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} on {}: {label}", results.model, results.dataset),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.clone(), (lo - pad)..(hi + pad))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(label)
            .draw()
            .map_err(|e| fail(&e))?;
        for ((name, f), color) in lines.iter().zip([BLUE, RED]) {
            chart
                .draw_series(LineSeries::new(series(*f), color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            // Markers keep a one-epoch run visible.
            chart
                .draw_series(
                    series(*f)
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

/// The published-style table: one row per run.
pub fn print_table(rows: &[RunResults]) {
    println!(
        "{:<15} {:<14} {:>6} {:>11} {:>10} {:>9} {:>9} {:>8}  shallow/deep",
        "model", "dataset", "layers", "params", "time (s)", "s/epoch", "accuracy", "paper"
    );
    for r in rows {
        let (best, _) = r.best().unwrap_or((f32::NAN, 0));
        let per_epoch =
            r.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / r.epochs.len().max(1) as f64;
        println!(
            "{:<15} {:<14} {:>6} {:>11} {:>10.1} {:>9.1} {:>8.2}% {:>8}  {}",
            r.model,
            r.dataset,
            r.weight_layers,
            r.parameters,
            r.published_style_seconds(),
            per_epoch,
            best,
            r.published_accuracy
                .map_or("-".to_string(), |a| format!("{a:.2}%")),
            if r.hidden_layers > 2 {
                "deep"
            } else {
                "shallow"
            }
        );
    }
}
