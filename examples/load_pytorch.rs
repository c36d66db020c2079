//! Loads weights trained by PyTorch and evaluates them with strata.
//!
//! `examples/data/lenet5_mnist_pytorch.safetensors` is a LeNet-5 trained for one epoch by
//! PyTorch (`scripts/make_pytorch_lenet5.py trained` made it), saved with
//! `safetensors.torch.save_file`, with PyTorch's parameter names and layouts. strata reads it
//! into its own LeNet-5 and classifies the MNIST test set: the count of correct answers should
//! equal the count PyTorch recorded in the file's metadata (give or take an image whose two top
//! scores tie to rounding), and the mean loss should agree to four digits.
//!
//!     cargo run --release --example load_pytorch [WEIGHTS.safetensors]

use std::path::{Path, PathBuf};
use strata::fetch::ensure_mnist;
use strata::models::data::load_mnist_dir;
use strata::models::train::evaluate;
use strata::models::zoo::{self, LossKind};
use strata::nn::checkpoint::{load_module, load_tensors};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let weights = std::env::args().nth(1).map_or_else(
        || PathBuf::from("examples/data/lenet5_mnist_pytorch.safetensors"),
        PathBuf::from,
    );
    let lenet5 = zoo::find("lenet5")?;
    let model = lenet5.build(0);
    load_module(&model, &weights)?;
    let metadata = load_tensors(&weights)?.metadata;

    let (_, test) = load_mnist_dir(&ensure_mnist(Path::new("datasets"))?, "mnist")?;
    let (mean, std) = lenet5.recipe.normalization.mean_std();
    let test = test.with_normalization(mean, std);
    let (loss, accuracy) = evaluate(&model, &test, LossKind::CrossEntropy, 1000);
    let correct = (accuracy as f64 * test.len() as f64 / 100.0).round() as i64;
    println!(
        "strata: {correct}/{} correct ({accuracy:.2} %), mean loss {loss:.4}",
        test.len()
    );

    let Some(pytorch) = metadata.get("test_correct") else {
        println!("(the file records no PyTorch result to compare with)");
        return Ok(());
    };
    let pytorch: i64 = pytorch.parse()?;
    let version = metadata.get("torch_version").map_or("?", String::as_str);
    println!("PyTorch {version}: {pytorch}/{} correct", test.len());
    if (correct - pytorch).abs() > 2 {
        return Err(format!(
            "strata and PyTorch disagree on {} images",
            (correct - pytorch).abs()
        )
        .into());
    }
    if let Some(pytorch_loss) = metadata.get("test_loss") {
        let pytorch_loss: f32 = pytorch_loss.parse()?;
        println!("PyTorch's mean loss {pytorch_loss:.4}, strata's {loss:.4}");
        if (pytorch_loss - loss).abs() > 1e-4 * pytorch_loss.max(1.0) {
            return Err(
                format!("the mean losses differ: PyTorch {pytorch_loss}, strata {loss}").into(),
            );
        }
    }
    println!("strata reproduces PyTorch's predictions");
    Ok(())
}
