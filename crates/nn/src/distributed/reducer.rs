//! Gradients averaged across ranks in buckets, overlapping backward.
//!
//! Parameters are grouped, last layer first, into buckets of about `bucket_bytes`. Backward
//! produces gradients roughly in that order (the output layer's first); the moment a bucket's
//! last gradient is final ([`Tensor::backward_with_hook`]), its gradients are copied into one
//! flat buffer and its all-reduce is started, and backward goes on with the earlier layers while
//! the sum travels. After backward, each bucket is waited for and its sums written back as the
//! parameters' gradients. One all-reduce per bucket instead of one per parameter saves the
//! per-message latency; starting early hides most of the transfer.

use super::{CommError, Communicator, Pending};
use crate::Tensor;
use std::collections::HashMap;

/// Splits parameters into buckets and all-reduces their gradients during backward.
pub struct GradientReducer {
    parameters: Vec<Tensor>,
    /// Parameter index by tensor id.
    index: HashMap<usize, usize>,
    /// Parameter indices of each bucket, in the order backward is expected to finish them.
    buckets: Vec<Vec<usize>>,
    /// The bucket of each parameter.
    bucket_of: Vec<usize>,
}

impl GradientReducer {
    /// PyTorch's DistributedDataParallel uses 25 MB; a few MB suits the small networks of the
    /// zoo, where one bucket would otherwise hold every gradient and nothing would overlap.
    pub const DEFAULT_BUCKET_BYTES: usize = 2 << 20;

    /// Buckets of about `bucket_bytes` over `parameters`, filled from the last parameter back.
    pub fn new(parameters: &[(String, Tensor)], bucket_bytes: usize) -> GradientReducer {
        let parameters: Vec<Tensor> = parameters.iter().map(|(_, t)| t.clone()).collect();
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut filled = usize::MAX;
        for i in (0..parameters.len()).rev() {
            let bytes = parameters[i].numel() * 4;
            if filled >= bucket_bytes {
                buckets.push(Vec::new());
                filled = 0;
            }
            buckets.last_mut().expect("a bucket").push(i);
            filled += bytes;
        }
        let mut bucket_of = vec![0; parameters.len()];
        for (b, members) in buckets.iter().enumerate() {
            for &i in members {
                bucket_of[i] = b;
            }
        }
        let index = parameters
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id(), i))
            .collect();
        GradientReducer {
            parameters,
            index,
            buckets,
            bucket_of,
        }
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Back-propagates `loss · weight` and leaves in every parameter's `grad()` the sum over
    /// all ranks of their gradients. With `weight = n_r / B` (this rank's share of the global
    /// batch) the sum is the gradient of the global batch's mean loss. Gradients must have been
    /// zeroed. A parameter that received no gradient on this rank contributes zeros; one that
    /// received none on any rank is left without a gradient, as in one process (optimizers
    /// skip it, instead of applying momentum or weight decay to it). Returns
    /// the seconds spent waiting for sums after backward had finished: the communication that
    /// computation did not hide.
    pub fn backward(
        &self,
        communicator: &dyn Communicator,
        loss: &Tensor,
        weight: f32,
    ) -> Result<f64, CommError> {
        if communicator.reduces_on_device() {
            return self.backward_on_device(communicator, loss, weight);
        }
        let mut ready = vec![0usize; self.buckets.len()];
        let mut pending: Vec<Option<Pending>> = (0..self.buckets.len()).map(|_| None).collect();
        let seed = Tensor::scalar(weight)
            .reshape(loss.shape())
            .to(loss.device())
            .unwrap_or_else(|e| panic!("backward: copying the loss weight: {e}"));
        loss.backward_with_hook(&seed, &mut |leaf| {
            let Some(&i) = self.index.get(&leaf.id()) else {
                return;
            };
            let b = self.bucket_of[i];
            ready[b] += 1;
            if ready[b] == self.buckets[b].len() {
                pending[b] = Some(communicator.start_all_reduce_sum(self.flatten(b)));
            }
        });
        // Buckets with a parameter backward never reached (unused on this batch) go last.
        for (b, slot) in pending.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Some(communicator.start_all_reduce_sum(self.flatten(b)));
            }
        }
        let (mut waited, mut write_back) = (0.0, 0.0);
        let start = std::time::Instant::now();
        for (b, slot) in pending.into_iter().enumerate() {
            let sums = slot.expect("started").wait()?;
            let copy = std::time::Instant::now();
            self.write_back(b, &sums);
            write_back += copy.elapsed().as_secs_f64();
        }
        waited += start.elapsed().as_secs_f64() - write_back;
        Ok(waited)
    }

    /// [`GradientReducer::backward`] for a communicator that sums in device memory (NCCL): each
    /// bucket's gradients are handed to it as tensors when the bucket is complete; the sums are
    /// queued on the device's stream behind the kernels that produced them, so backward goes on
    /// while the GPUs exchange them.
    fn backward_on_device(
        &self,
        communicator: &dyn Communicator,
        loss: &Tensor,
        weight: f32,
    ) -> Result<f64, CommError> {
        let mut ready = vec![0usize; self.buckets.len()];
        let mut sent = vec![false; self.buckets.len()];
        let mut had_gradient = vec![0f32; self.parameters.len()];
        let mut outcome = Ok(());
        let seed = Tensor::scalar(weight)
            .reshape(loss.shape())
            .to(loss.device())
            .unwrap_or_else(|e| panic!("backward: copying the loss weight: {e}"));
        loss.backward_with_hook(&seed, &mut |leaf| {
            let Some(&i) = self.index.get(&leaf.id()) else {
                return;
            };
            let b = self.bucket_of[i];
            ready[b] += 1;
            if ready[b] == self.buckets[b].len() && outcome.is_ok() {
                sent[b] = true;
                outcome = self.reduce_on_device(communicator, b, &mut had_gradient);
            }
        });
        outcome?;
        for (b, _) in sent.iter().enumerate().filter(|(_, &sent)| !sent) {
            self.reduce_on_device(communicator, b, &mut had_gradient)?;
        }
        let anywhere = communicator.all_reduce_sum(had_gradient)?;
        for (p, _) in self
            .parameters
            .iter()
            .zip(anywhere)
            .filter(|(_, n)| *n == 0.0)
        {
            p.set_grad(None);
        }
        Ok(0.0)
    }

    /// Gives every parameter of `bucket` a gradient of its own buffer (zeros where backward
    /// left none, noted in `had_gradient`) and sums them over the ranks in place.
    fn reduce_on_device(
        &self,
        communicator: &dyn Communicator,
        bucket: usize,
        had_gradient: &mut [f32],
    ) -> Result<(), CommError> {
        let grads: Vec<Tensor> = self.buckets[bucket]
            .iter()
            .map(|&i| {
                let p = &self.parameters[i];
                had_gradient[i] = f32::from(u8::from(p.grad().is_some()));
                // A fresh buffer per gradient: the sum is written in place into exactly it.
                let g = match p.grad() {
                    Some(g) => g.add_scalar(0.0),
                    None => p.zeros_like(),
                };
                p.set_grad(Some(g.clone()));
                g
            })
            .collect();
        communicator.all_reduce_tensors(&grads)
    }

    /// The bucket's gradients, one after the other (zeros for a missing gradient), then one
    /// flag per parameter: 1 where this rank has a gradient.
    fn flatten(&self, bucket: usize) -> Vec<f32> {
        let mut flat = Vec::new();
        let mut flags = Vec::new();
        for &i in &self.buckets[bucket] {
            let p = &self.parameters[i];
            match p.grad() {
                Some(g) => flat.extend(g.to_vec()),
                None => flat.extend(std::iter::repeat_n(0.0, p.numel())),
            }
            flags.push(f32::from(u8::from(p.grad().is_some())));
        }
        flat.extend(flags);
        flat
    }

    /// Sets the summed gradients of `bucket` from `sums` (laid out as [`Self::flatten`]).
    fn write_back(&self, bucket: usize, sums: &[f32]) {
        let members = &self.buckets[bucket];
        let flags = &sums[sums.len() - members.len()..];
        let mut at = 0;
        for (&i, &flag) in members.iter().zip(flags) {
            let p = &self.parameters[i];
            let n = p.numel();
            let g = (flag > 0.0).then(|| {
                Tensor::from_vec(sums[at..at + n].to_vec(), p.shape())
                    .to(p.device())
                    .unwrap_or_else(|e| panic!("copying a summed gradient to {}: {e}", p.device()))
            });
            p.set_grad(g);
            at += n;
        }
    }
}
