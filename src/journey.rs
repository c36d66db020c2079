//! "The journey of a DNN model": its ten rounds, the figures its notebooks published
//! (`docs/journey_published.json`, per epoch), and the table that sets strata's runs beside
//! them, for `strata journey` and for README's table of the committed records.

use crate::runs::RunResults;
use std::path::Path;
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

/// What plotters said when a figure could not be drawn.
fn fail(e: &dyn std::fmt::Display) -> String {
    format!("cannot draw the figure: {e}")
}

/// The legend both figures share: lower right, over a translucent white box; `font_size`
/// overrides plotters' default label font.
fn draw_legend<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut plotters::chart::ChartContext<'a, plotters::backend::SVGBackend<'b>, CT>,
    font_size: Option<u32>,
) -> Result<(), String> {
    use plotters::prelude::*;
    let mut legend = chart.configure_series_labels();
    legend
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK);
    if let Some(size) = font_size {
        legend.label_font(("sans-serif", size));
    }
    legend.draw().map_err(|e| fail(&e))
}

/// Test accuracy per epoch, strata's over the published curve, one panel per round, as SVG.
pub fn plot_overlay(rows: &[JourneyRun<'_>], published: &[Published]) -> Result<String, String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    // The drawing borrows `svg` until it is dropped at the end of the block.
    {
        let mut rounds: Vec<usize> = rows.iter().map(|r| r.round).collect();
        rounds.dedup();
        let columns = rounds.len().clamp(1, 5);
        let lines = rounds.len().div_ceil(columns);
        let size = (260 * columns as u32, 230 * lines as u32);
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let panels = root.split_evenly((lines, columns));
        for (panel, &round) in panels.iter().zip(&rounds) {
            let p = &published[round - 1];
            let ours: Vec<&JourneyRun<'_>> = rows.iter().filter(|r| r.round == round).collect();
            let run_curve = |run: &RunResults| -> Vec<(f32, f32)> {
                run.epochs
                    .iter()
                    .map(|e| (e.epoch as f32, e.test_accuracy))
                    .collect()
            };
            let published_curve: Vec<(f32, f32)> = p
                .test_curve
                .iter()
                .enumerate()
                .map(|(i, &a)| ((i + 1) as f32, a))
                .collect();
            let values: Vec<f32> = published_curve
                .iter()
                .chain(
                    ours.iter()
                        .flat_map(|r| run_curve(r.run))
                        .collect::<Vec<_>>()
                        .iter(),
                )
                .map(|&(_, y)| y)
                .filter(|y| y.is_finite())
                .collect();
            let hi = values
                .iter()
                .cloned()
                .fold(f32::NEG_INFINITY, f32::max)
                .max(99.5);
            // The first epochs of some rounds start far below where the rounds differ: the panel
            // shows the top 2.5 points and draws lower accuracies at its floor.
            let lo = values
                .iter()
                .cloned()
                .fold(f32::INFINITY, f32::min)
                .clamp(hi - 2.5, 99.0);
            let curve = |points: Vec<(f32, f32)>| -> Vec<(f32, f32)> {
                points
                    .into_iter()
                    .map(|(x, y)| (x, y.max(lo - 0.1)))
                    .collect()
            };
            let epochs = published_curve
                .len()
                .max(ours.iter().map(|r| r.run.epochs.len()).max().unwrap_or(1))
                as f32;
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("round {round}: {}", p.title), ("sans-serif", 13))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(40)
                .build_cartesian_2d(1f32..epochs.max(2.0), (lo - 0.1)..(hi + 0.1))
                .map_err(|e| fail(&e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("test %")
                .x_labels(10)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.1}"))
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(|e| fail(&e))?;
            chart
                .draw_series(LineSeries::new(
                    curve(published_curve),
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| fail(&e))?
                .label("published")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK));
            for row in ours {
                let (color, name) = if row.stepped {
                    (RED, "strata, StepLR")
                } else {
                    (BLUE, "strata")
                };
                chart
                    .draw_series(LineSeries::new(
                        curve(run_curve(row.run)),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| fail(&e))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color));
            }
            draw_legend(&mut chart, Some(10))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// Parameters (log scale) against best test accuracy, round by round (the article's story), as
/// SVG.
pub fn plot_summary(rows: &[JourneyRun<'_>], published: &[Published]) -> Result<String, String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    // The drawing borrows `svg` until it is dropped at the end of the block.
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let points: Vec<(String, f32, f32, f32, bool)> = rows
            .iter()
            .map(|row| {
                (
                    row.label(),
                    (row.parameters as f32).log10(),
                    best(row.run, |e| e.test_accuracy).0,
                    published[row.round - 1].best_test,
                    row.stepped,
                )
            })
            .collect();
        let ys: Vec<f32> = points
            .iter()
            .flat_map(|p| [p.2, p.3])
            .filter(|y| y.is_finite())
            .collect();
        let lo = ys.iter().cloned().fold(f32::INFINITY, f32::min).min(98.5);
        let hi = ys
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max)
            .max(99.5);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "The journey: parameters against best test accuracy",
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(3.5f32..7.0f32, (lo - 0.1)..(hi + 0.15))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("trainable parameters (log scale)")
            .y_desc("best test accuracy, %")
            .x_label_formatter(&|x| {
                let n = 10f32.powf(*x);
                if n >= 1e6 {
                    format!("{:.1} M", n / 1e6)
                } else {
                    format!("{:.0} k", n / 1e3)
                }
            })
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Cross::new((p.1, p.3), 5, BLACK.stroke_width(2))),
            )
            .map_err(|e| fail(&e))?
            .label("published")
            .legend(|(x, y)| Cross::new((x + 7, y), 4, BLACK));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| !p.4)
                    .map(|p| Circle::new((p.1, p.2), 5, BLUE.filled())),
            )
            .map_err(|e| fail(&e))?
            .label("strata")
            .legend(|(x, y)| Circle::new((x + 7, y), 4, BLUE.filled()));
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.4)
                    .map(|p| Circle::new((p.1, p.2), 5, RED.filled())),
            )
            .map_err(|e| fail(&e))?
            .label("strata, StepLR")
            .legend(|(x, y)| Circle::new((x + 7, y), 4, RED.filled()));
        // The journey's path: strata's rounds in order, each a step of the story.
        chart
            .draw_series(LineSeries::new(
                points.iter().filter(|p| !p.4).map(|p| (p.1, p.2)),
                BLUE.mix(0.35).stroke_width(1),
            ))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(points.iter().map(|p| {
                Text::new(
                    format!("r{}", p.0.replace(" StepLR", "s")),
                    (p.1 + 0.04, p.2 + 0.03),
                    ("sans-serif", 12),
                )
            }))
            .map_err(|e| fail(&e))?;
        draw_legend(&mut chart, None)?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// The committed runs of `dir` (`results/journey/`): each a `strata journey` run's
/// `results.json`, named `NETWORK-mnist.json`, or `journey_final-steplr-mnist.json` for round
/// 10 with StepLR; as (round, stepped, results), in round order.
pub fn committed(dir: &Path) -> Result<Vec<(usize, bool, RunResults)>, String> {
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let run = RunResults::load_record(&path)?;
        let round = ROUNDS
            .iter()
            .position(|&name| name == run.model)
            .ok_or_else(|| {
                format!(
                    "{}: {} is not a round of the journey",
                    path.display(),
                    run.model
                )
            })?;
        let stepped = path.to_string_lossy().contains("-steplr");
        runs.push((round + 1, stepped, run));
    }
    runs.sort_by_key(|(round, stepped, _)| (*round, *stepped));
    Ok(runs)
}

/// The rows of [`committed`] runs with seed 0 (other seeds go to [`seeds`]).
pub fn rows(runs: &[(usize, bool, RunResults)]) -> Vec<JourneyRun<'_>> {
    runs.iter()
        .filter(|(_, _, run)| run.seed == 0)
        .map(|(round, stepped, run)| JourneyRun {
            round: *round,
            stepped: *stepped,
            name: ROUNDS[round - 1],
            parameters: run.parameters,
            run,
        })
        .collect()
}

/// How far a round's seed-0 run may fall under its published best test accuracy, in points,
/// before its result needs more seeds to tell a worse recipe from an unlucky draw.
pub const SEED_TOLERANCE: f32 = 0.15;

/// The lines under the table about seeds: the mean over the seeds of every run recorded with
/// several, and each seed-0 run more than [`SEED_TOLERANCE`] under the published figure that
/// has fewer than three.
pub fn seeds(runs: &[(usize, bool, RunResults)], published: &[Published]) -> String {
    let mut out = String::new();
    for row in rows(runs) {
        let p = &published[row.round - 1];
        let mut all: Vec<&RunResults> = runs
            .iter()
            .filter(|(round, stepped, _)| *round == row.round && *stepped == row.stepped)
            .map(|(_, _, run)| run)
            .collect();
        all.sort_by_key(|run| run.seed);
        let bests: Vec<f32> = all
            .iter()
            .map(|run| best(run, |e| e.test_accuracy).0)
            .collect();
        if all.len() > 1 {
            let mean = bests.iter().sum::<f32>() / bests.len() as f32;
            out += &format!(
                "\nRound {} over seeds {}: best test accuracy {} %, mean {mean:.2} % (published {:.2} %).\n",
                row.label(),
                all.iter()
                    .map(|run| run.seed.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                bests
                    .iter()
                    .map(|b| format!("{b:.2}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                p.best_test
            );
        }
        let under = p.best_test - bests[0];
        if under > SEED_TOLERANCE + 1e-4 && all.len() < 3 {
            out += &format!(
                "\nRound {} is {under:.2} points under its published best test accuracy with \
                 seed 0; the mean of three seeds is not recorded yet.\n",
                row.label()
            );
        }
    }
    out
}

/// The figures README shows, drawn from the committed runs: file name and drawing.
pub const FIGURES: [(&str, Figure); 2] = [
    ("journey-test-accuracy.svg", plot_overlay),
    ("journey-parameters-accuracy.svg", plot_summary),
];

/// Draws one figure of the rows, as SVG.
pub type Figure = fn(&[JourneyRun<'_>], &[Published]) -> Result<String, String>;

/// [`FIGURES`] drawn from the runs of `results` (`results/journey/`): file name and SVG.
pub fn figures(results: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let runs = committed(results)?;
    let rows = rows(&runs);
    let published = published()?;
    FIGURES
        .iter()
        .map(|(name, draw)| {
            Ok((
                *name,
                draw(&rows, &published).map_err(|e| format!("{name}: {e}"))?,
            ))
        })
        .collect()
}
