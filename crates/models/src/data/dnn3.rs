//! The dnn3 synthetic set: three U(0,1) features; the class says whether their sum is below 1,
//! between 1 and 2, or above 2. About two thirds of the rows fall in the middle class.

use super::Dataset;
use strata_tensor::{Generator, Tensor};

/// Rows of three features with a class in 0..3.
pub struct Dnn3 {
    features: Vec<[f32; 3]>,
    labels: Vec<u32>,
}

impl Dnn3 {
    /// `rows` rows drawn from `generator`.
    pub fn generate(rows: usize, generator: &mut Generator) -> Dnn3 {
        let mut features = Vec::with_capacity(rows);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let x = [
                generator.uniform(),
                generator.uniform(),
                generator.uniform(),
            ];
            let s = x[0] + x[1] + x[2];
            labels.push(if s < 1.0 {
                0
            } else if s < 2.0 {
                1
            } else {
                2
            });
            features.push(x);
        }
        Dnn3 { features, labels }
    }

    /// The class of every row (0: sum below 1, 1: between 1 and 2, 2: above 2), in row order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
}

/// The published protocol: 10,000 rows, shuffled, first 70 % for training, last 30 % for test.
pub fn dnn3_split(seed: u64) -> (Dnn3, Dnn3) {
    let mut generator = Generator::seed(seed);
    let all = Dnn3::generate(10_000, &mut generator);
    // The rows are i.i.d., so a shuffle would change nothing statistically; it is done anyway
    // with the seed to follow the published protocol step by step.
    let mut order: Vec<usize> = (0..all.labels.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, generator.below(i + 1));
    }
    let pick = |idx: &[usize]| Dnn3 {
        features: idx.iter().map(|&i| all.features[i]).collect(),
        labels: idx.iter().map(|&i| all.labels[i]).collect(),
    };
    let cut = all.labels.len() * 7 / 10;
    (pick(&order[..cut]), pick(&order[cut..]))
}

impl Dataset for Dnn3 {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn classes(&self) -> usize {
        3
    }

    fn example_shape(&self) -> Vec<usize> {
        vec![3]
    }

    fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u32>) {
        let data = indices.iter().flat_map(|&i| self.features[i]).collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (Tensor::from_vec(data, &[indices.len(), 3]), labels)
    }
}
