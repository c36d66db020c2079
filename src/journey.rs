//! "The journey of a DNN model": its ten rounds, the figures its notebooks published
//! (`docs/journey_published.json`, per epoch), and the table that sets strata's runs beside
//! them, for `strata journey` and for README's table of the committed records.

use crate::runs::RunResults;
use strata_models::train::EpochReport;

/// The published per-epoch figures of every round.
pub const PUBLISHED: &str = include_str!("../docs/journey_published.json");

/// The zoo's network of each round, 1 to 10.
pub const ROUNDS: [&str; 10] = [
    "journey_r1",
    "journey_r2",
    "journey_r3",
    "journey_r4",
    "journey_r5",
    "journey_r6",
    "journey_r7",
    "journey_r8",
    "journey_r9",
    "journey_final",
];

/// What the notebooks printed for one round.
pub struct Published {
    /// The round's title in its notebook.
    pub title: String,
    /// Best test accuracy, percent.
    pub best_test: f32,
    /// The epochs (1-based) that reached it.
    pub best_test_epochs: Vec<usize>,
    /// Best training accuracy, percent.
    pub best_train: f32,
    /// The epochs that reached it.
    pub best_train_epochs: Vec<usize>,
    /// Test accuracy after each epoch.
    pub test_curve: Vec<f32>,
}

/// The published figures of rounds 1 to 10, in order.
pub fn published() -> Result<Vec<Published>, String> {
    let json: serde_json::Value =
        serde_json::from_str(PUBLISHED).map_err(|e| format!("docs/journey_published.json: {e}"))?;
    (1..=10)
        .map(|round| {
            let r = &json[format!("round_{round}")];
            let number = |key: &str| r[key].as_f64().map(|v| v as f32);
            let epochs = |key: &str| -> Vec<usize> {
                r[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_u64())
                            .map(|e| e as usize)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let test_curve = r["epochs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["test_accuracy"].as_f64())
                        .map(|v| v as f32)
                        .collect()
                })
                .unwrap_or_default();
            let incomplete = || format!("docs/journey_published.json: round {round} is incomplete");
            Ok(Published {
                title: r["title"].as_str().ok_or_else(incomplete)?.to_string(),
                best_test: number("best_test_accuracy").ok_or_else(incomplete)?,
                best_test_epochs: epochs("best_test_epochs"),
                best_train: number("best_train_accuracy").ok_or_else(incomplete)?,
                best_train_epochs: epochs("best_train_epochs"),
                test_curve,
            })
        })
        .collect()
}

/// One of strata's runs of a round.
pub struct JourneyRun<'a> {
    /// The round, 1 to 10.
    pub round: usize,
    /// Round 10 with the StepLR(6, 0.1) the article describes (instead of the constant rate).
    pub stepped: bool,
    /// The zoo's network.
    pub name: &'a str,
    /// Its trainable parameters.
    pub parameters: usize,
    /// The run's results.
    pub run: &'a RunResults,
}

impl JourneyRun<'_> {
    /// `5`, or `10 StepLR`.
    pub fn label(&self) -> String {
        if self.stepped {
            format!("{} StepLR", self.round)
        } else {
            self.round.to_string()
        }
    }
}

/// The epoch numbers as text: `12, 16`.
pub fn epochs_text(epochs: &[usize]) -> String {
    epochs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Best value of `pick` over the epochs, and every epoch that reached it.
pub fn best(run: &RunResults, pick: fn(&EpochReport) -> f32) -> (f32, Vec<usize>) {
    let top = run
        .epochs
        .iter()
        .map(pick)
        .fold(f32::NEG_INFINITY, f32::max);
    let at = run
        .epochs
        .iter()
        .filter(|e| (pick(e) - top).abs() < 5e-3)
        .map(|e| e.epoch)
        .collect();
    (top, at)
}

/// The journey's table: one row per run, the published figures beside it.
pub fn table(rows: &[JourneyRun<'_>], published: &[Published]) -> String {
    let mut out = String::from(
        "| round | network | what it tries | parameters | best train % (epoch) | best test % (epoch) | s/epoch | published train % (epoch) | published test % (epoch) |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let (run, p) = (row.run, &published[row.round - 1]);
        let (train, train_at) = best(run, |e| e.train_accuracy);
        let (test, test_at) = best(run, |e| e.test_accuracy);
        let mut seconds: Vec<f64> = run.epochs.iter().map(|e| e.train_seconds).collect();
        seconds.sort_by(f64::total_cmp);
        let median = seconds.get(seconds.len() / 2).copied().unwrap_or(f64::NAN);
        let tries = if row.stepped {
            format!("{}, with StepLR(6, 0.1) stepped", p.title)
        } else {
            p.title.clone()
        };
        out += &format!(
            "| {} | {} | {tries} | {} | {train:.2} ({}) | {test:.2} ({}) | {median:.1} | {:.2} ({}) | {:.2} ({}) |\n",
            row.label(),
            row.name,
            strata_nn::thousands(row.parameters),
            epochs_text(&train_at),
            epochs_text(&test_at),
            p.best_train,
            epochs_text(&p.best_train_epochs),
            p.best_test,
            epochs_text(&p.best_test_epochs),
        );
    }
    out
}
