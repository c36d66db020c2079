//! Trains dnn3 with the library crates alone: no command line, and it builds without CUDA
//! (no cudarc, no C++ compiler), as an embedder that only wants CPU training would link it:
//!
//!     cargo run -p strata-models --no-default-features --release --example train_dnn3
//!
//! Two recipes, each checked, so a broken build fails loudly:
//! - the published one (MSE, SGD 0.01, full batch, 1000 epochs): the network learns to predict
//!   the middle class for every row, so its test accuracy is exactly that class's share of the
//!   test rows (66.63 % with seed 0);
//! - cross-entropy and Adam (lr 0.01, batches of 100, 30 epochs): at least 99 % at its best
//!   epoch (99.87 % with seed 0).

use strata_models::data::{dnn3_split, Dataset};
use strata_models::train::{Silent, TrainConfig, Trainer};
use strata_models::zoo::{self, LossKind, OptimizerKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = 0;
    let entry = zoo::find("dnn3")?;
    let (train, test) = dnn3_split(seed);
    let middle = test.labels().iter().filter(|&&label| label == 1).count();
    let middle_share = (100.0 * middle as f64 / test.len() as f64) as f32;

    let published = TrainConfig::from_recipe(&entry.recipe, seed);
    let model = entry.build(seed);
    let reports = Trainer::new(&model, published).run(&train, &test, &mut Silent)?;
    let last = reports.last().ok_or("the published recipe ran no epoch")?;
    println!(
        "MSE + SGD, {} epochs: test loss {:.6}, test accuracy {:.2} % (middle class {:.2} %)",
        last.epoch, last.test_loss, last.test_accuracy, middle_share
    );
    if last.test_accuracy != middle_share {
        return Err(format!(
            "MSE + SGD ended at {:.2} % test accuracy; the published behaviour is the middle \
             class's share, {middle_share:.2} %",
            last.test_accuracy
        )
        .into());
    }

    let mut adam = TrainConfig::from_recipe(&entry.recipe, seed);
    adam.loss = LossKind::CrossEntropy;
    adam.optimizer = OptimizerKind::Adam;
    adam.lr = 0.01;
    adam.batch_size = 100;
    adam.epochs = 30;
    let model = entry.build(seed);
    let reports = Trainer::new(&model, adam).run(&train, &test, &mut Silent)?;
    let best = reports
        .iter()
        .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy))
        .ok_or("the cross-entropy recipe ran no epoch")?;
    println!(
        "cross-entropy + Adam, 30 epochs: best test accuracy {:.2} % (epoch {})",
        best.test_accuracy, best.epoch
    );
    if best.test_accuracy < 99.0 {
        return Err(format!(
            "cross-entropy + Adam reached only {:.2} % test accuracy; it reaches 99.87 %",
            best.test_accuracy
        )
        .into());
    }
    Ok(())
}
