//! Checks against the real MNIST / Fashion-MNIST files in `<workspace>/datasets/`, which
//! `make data` fetches. Where they are absent the tests skip with the reason (`test_skip`),
//! except under CI=true, where they fail.

use std::path::PathBuf;

use strata_kernels::test_skip::{skip, Reason};
use strata_models::data::{file_md5, load_mnist_dir, Dataset, FASHION_MNIST_MD5, MNIST_MD5};

fn datasets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn present(folder: &str) -> Option<PathBuf> {
    let dir = datasets_dir().join(folder);
    if dir.join("train-images-idx3-ubyte").is_file()
        || dir.join("train-images-idx3-ubyte.gz").is_file()
    {
        Some(dir)
    } else {
        skip(Reason::DataAbsent(format!(
            "{} is absent (run `make data` to fetch it)",
            dir.display()
        )));
        None
    }
}

fn existing(dir: &std::path::Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if plain.is_file() {
        plain
    } else {
        dir.join(format!("{name}.gz"))
    }
}

#[test]
fn real_mnist_matches_published_facts() {
    let Some(dir) = present("mnist") else { return };
    let (train, test) = load_mnist_dir(&dir, "mnist").unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.example_shape(), vec![1, 28, 28]);
    assert_eq!(
        train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(&train.labels()[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&test.labels()[..5], &[7, 2, 1, 0, 4]);
    assert_eq!(
        test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The published mean / std of the training pixels (the MNIST normalisation constants).
    let n = train.pixels().len() as f64;
    let mean = train
        .pixels()
        .iter()
        .map(|&p| p as f64 / 255.0)
        .sum::<f64>()
        / n;
    let var = train
        .pixels()
        .iter()
        .map(|&p| (p as f64 / 255.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!((mean - 0.1307).abs() < 5e-5, "mean {mean}");
    assert!((var.sqrt() - 0.3081).abs() < 5e-5, "std {}", var.sqrt());
}

#[test]
fn md5_table_matches_the_real_files() {
    for (folder, table) in [("mnist", MNIST_MD5), ("fashion-mnist", FASHION_MNIST_MD5)] {
        let Some(dir) = present(folder) else { continue };
        for (name, md5) in table {
            assert_eq!(
                file_md5(&existing(&dir, name)).unwrap(),
                md5,
                "{folder}/{name}"
            );
        }
    }
}

#[test]
fn real_fashion_mnist_loads() {
    let Some(dir) = present("fashion-mnist") else {
        return;
    };
    let (train, test) = load_mnist_dir(&dir, "fashion-mnist").unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    // Fashion-MNIST is balanced: 6,000 train and 1,000 test images per class.
    assert_eq!(train.class_counts(), vec![6000; 10]);
    assert_eq!(test.class_counts(), vec![1000; 10]);
    // First training label is 9 (ankle boot), first test label 9 as well.
    assert_eq!(train.label(0), 9);
    assert_eq!(test.label(0), 9);
}
