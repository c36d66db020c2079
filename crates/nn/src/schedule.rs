//! Learning-rate schedules, as closed forms of PyTorch's schedulers: `lr(t)` for step or
//! epoch `t` (counting from 0), so resuming at any `t` needs no replay.

use std::f32::consts::PI;

/// A learning rate as a function of the epoch (or step) index.
pub trait LrSchedule: Send + Sync {
    fn lr(&self, t: usize) -> f32;
}

/// The same rate throughout.
pub struct Constant(pub f32);

/// `base · γ^⌊t / step⌋` (StepLR).
pub struct StepLr {
    pub base: f32,
    pub step_size: usize,
    pub gamma: f32,
}

/// `base · γ^(number of milestones ≤ t)` (MultiStepLR).
pub struct MultiStepLr {
    pub base: f32,
    pub milestones: Vec<usize>,
    pub gamma: f32,
}

/// `base · γ^t` (ExponentialLR).
pub struct ExponentialLr {
    pub base: f32,
    pub gamma: f32,
}

/// `η_min + (base - η_min) · (1 + cos(π t / T_max)) / 2` (CosineAnnealingLR).
pub struct CosineAnnealingLr {
    pub base: f32,
    pub t_max: usize,
    pub eta_min: f32,
}

/// One-cycle (OneCycleLR, cosine annealing): from `max/div_factor` up to `max` over the first
/// `pct_start` of `total_steps`, then down to `initial/final_div_factor`.
pub struct OneCycleLr {
    pub max_lr: f32,
    pub total_steps: usize,
    pub pct_start: f32,
    pub div_factor: f32,
    pub final_div_factor: f32,
}

impl OneCycleLr {
    /// PyTorch's defaults: pct_start 0.3, div_factor 25, final_div_factor 1e4.
    pub fn new(max_lr: f32, total_steps: usize) -> OneCycleLr {
        OneCycleLr {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
}

impl LrSchedule for Constant {
    fn lr(&self, _t: usize) -> f32 {
        self.0
    }
}

impl LrSchedule for StepLr {
    fn lr(&self, t: usize) -> f32 {
        assert!(self.step_size > 0, "StepLR: step_size must be positive");
        self.base * self.gamma.powi((t / self.step_size) as i32)
    }
}

impl LrSchedule for MultiStepLr {
    fn lr(&self, t: usize) -> f32 {
        let passed = self.milestones.iter().filter(|&&m| m <= t).count();
        self.base * self.gamma.powi(passed as i32)
    }
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, t: usize) -> f32 {
        self.base * self.gamma.powi(t as i32)
    }
}

impl LrSchedule for CosineAnnealingLr {
    fn lr(&self, t: usize) -> f32 {
        assert!(self.t_max > 0, "CosineAnnealingLR: t_max must be positive");
        self.eta_min
            + (self.base - self.eta_min) * (1.0 + (PI * t as f32 / self.t_max as f32).cos()) / 2.0
    }
}

impl LrSchedule for OneCycleLr {
    fn lr(&self, t: usize) -> f32 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let up_end = self.pct_start * self.total_steps as f32 - 1.0;
        let down_end = self.total_steps as f32 - 1.0;
        let t = t as f32;
        let anneal =
            |start: f32, end: f32, pct: f32| end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0);
        if t <= up_end {
            anneal(initial, self.max_lr, t / up_end.max(f32::MIN_POSITIVE))
        } else {
            anneal(
                self.max_lr,
                min,
                ((t - up_end) / (down_end - up_end)).min(1.0),
            )
        }
    }
}
