//! `strata data`: fetch and verify the datasets the project can download.

use std::path::PathBuf;
use strata::fetch::{ensure_fashion_mnist, ensure_mnist};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Mnist,
    FashionMnist,
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which dataset to fetch.
    #[arg(value_enum, default_value = "all")]
    pub which: Which,
    /// Folder to put them in.
    #[arg(long, default_value = "datasets")]
    pub data: PathBuf,
}

pub fn run(args: &Args) -> Result<(), String> {
    if matches!(args.which, Which::Mnist | Which::All) {
        let dir = ensure_mnist(&args.data).map_err(|e| e.to_string())?;
        println!("MNIST ready in {} (checksums verified)", dir.display());
    }
    if matches!(args.which, Which::FashionMnist | Which::All) {
        let dir = ensure_fashion_mnist(&args.data).map_err(|e| e.to_string())?;
        println!(
            "Fashion-MNIST ready in {} (checksums verified)",
            dir.display()
        );
    }
    println!(
        "CIFAR-10 cannot be downloaded here: put data_batch_1.bin .. data_batch_5.bin and \
         test_batch.bin (the binary version) in {}",
        args.data.join("cifar10").display()
    );
    Ok(())
}
