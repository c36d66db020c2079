use crate::Module;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use strata_tensor::{Generator, Tensor};

/// Zeroes each activation with probability `p` in training and scales the rest by 1/(1-p);
/// the identity in evaluation. Its own seeded generator makes the masks reproducible.
pub struct Dropout {
    /// Probability of zeroing each element in training, in `[0, 1]` (PyTorch's default is 0.5).
    pub p: f32,
    generator: Mutex<Generator>,
    training: AtomicBool,
}

impl Dropout {
    /// Draws the seed of its mask generator from `generator`.
    pub fn new(p: f32, generator: &mut Generator) -> Dropout {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout: probability {p} is outside [0, 1]"
        );
        Dropout {
            p,
            generator: Mutex::new(Generator::seed(generator.next_u64())),
            training: AtomicBool::new(true),
        }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Tensor {
        let training = self.training.load(Ordering::Relaxed);
        let mut generator = self.generator.lock().unwrap_or_else(|p| p.into_inner());
        // A data-parallel rank's rows take their part of the global batch's mask.
        let first_row = crate::distributed::current_shard().map_or(0, |s| s.first_row);
        x.dropout_rows_from(self.p, training, &mut generator, first_row)
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn reseed(&self, seed: u64) {
        *self.generator.lock().unwrap_or_else(|p| p.into_inner()) = Generator::seed(seed);
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
}
