//! The seedable generator behind initialisation, dropout masks, shuffling and augmentation.

use rand::SeedableRng;

/// A fast, portable, seedable generator: the same seed gives the same stream on every
/// platform and in every release of strata (ChaCha with 8 rounds).
#[derive(Clone, Debug)]
pub struct Generator(pub(crate) rand_chacha::ChaCha8Rng);

impl Generator {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn seed(seed: u64) -> Self {
        Generator(rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    /// Access to the underlying `rand` generator, for distributions of your own.
    pub fn rng(&mut self) -> &mut impl rand::Rng {
        &mut self.0
    }

    /// A uniform draw in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        rand::Rng::random::<f32>(&mut self.0)
    }

    /// 64 uniform random bits, e.g. to seed a child generator.
    pub fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }

    /// A uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        rand::Rng::random_range(&mut self.0, 0..n)
    }
}
