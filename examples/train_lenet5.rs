//! Trains LeNet-5 on MNIST with the library alone: the data, the network, the optimizer and
//! the loop, in about thirty lines. (`strata train lenet5` does the same with progress bars,
//! checkpoints and curves.)
//!
//!     cargo run --release --example train_lenet5 [EPOCHS]

use std::path::Path;
use strata::fetch::ensure_mnist;
use strata::models::data::{batches, load_mnist_dir, Dataset};
use strata::models::train::evaluate;
use strata::models::zoo::LossKind;
use strata::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = std::env::args().nth(1).map_or(Ok(1), |a| a.parse())?;
    let (train, test) = load_mnist_dir(&ensure_mnist(Path::new("datasets"))?, "mnist")?;
    let (train, test) = (
        train.with_normalization(0.1307, 0.3081),
        test.with_normalization(0.1307, 0.3081),
    );

    let g = &mut Generator::seed(0);
    #[rustfmt::skip]
    let model = Sequential::new(vec![
        Box::new(Conv2d::new(1, 6, 5, 1, 2, true, g)), Box::new(ReLU), Box::new(MaxPool2d::new(2)),
        Box::new(Conv2d::new(6, 16, 5, 1, 0, true, g)), Box::new(ReLU), Box::new(MaxPool2d::new(2)),
        Box::new(Flatten),
        Box::new(Linear::new(400, 120, g)), Box::new(ReLU),
        Box::new(Linear::new(120, 84, g)), Box::new(ReLU),
        Box::new(Linear::new(84, 10, g)),
    ]);
    let mut sgd = Sgd::with_config(
        model.parameters(),
        SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
    );

    let mut accuracy = 0.0;
    for epoch in 1..=epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        (1..order.len())
            .rev()
            .for_each(|i| order.swap(i, g.below(i + 1)));
        for indices in batches(&order, 100) {
            let (images, labels) = train.batch(indices);
            let loss = model.forward(&images).softmax_cross_entropy(&labels);
            sgd.zero_grad();
            loss.backward();
            sgd.step();
        }
        let test_loss;
        (test_loss, accuracy) = evaluate(&model, &test, LossKind::CrossEntropy, 1000);
        println!("epoch {epoch}: test loss {test_loss:.4}, test accuracy {accuracy:.2} %");
    }
    // A smoke check for `make test`: one epoch of this recipe lands near 98 %.
    if accuracy < 95.0 {
        return Err(
            format!("test accuracy {accuracy:.2} % is below 95 %: training is broken").into(),
        );
    }
    Ok(())
}
