//! Learning-rate schedules, as closed forms of PyTorch's schedulers: `lr(t)` for step or
//! epoch `t` (counting from 0), so resuming at any `t` needs no replay.

use std::f32::consts::PI;

/// A learning rate as a function of the epoch (or step) index.
///
/// Set the optimizer's rate from the schedule at the start of each epoch, as PyTorch's
/// `scheduler.step()` would:
///
/// ```
/// use strata_nn::schedule::{LrSchedule, OneCycleLr, StepLr};
/// let step = StepLr { base: 0.1, step_size: 10, gamma: 0.5 };
/// assert_eq!(step.lr(0), 0.1);
/// assert_eq!(step.lr(9), 0.1);
/// assert_eq!(step.lr(10), 0.05);
///
/// let one_cycle = OneCycleLr::new(1.0, 100);
/// assert!((one_cycle.lr(0) - 1.0 / 25.0).abs() < 1e-6); // max_lr / div_factor
/// assert!((one_cycle.lr(29) - 1.0).abs() < 1e-6); // the peak, after 30% of the steps
/// assert!(one_cycle.lr(99) < 1e-5); // annealed to max_lr / 25 / 1e4
/// ```
pub trait LrSchedule: Send + Sync {
    /// The learning rate to use for epoch (or step) `t`, counting from 0. Pure: calling it for
    /// any `t`, in any order, gives the same answer.
    fn lr(&self, t: usize) -> f32;
}

/// The same rate throughout.
pub struct Constant(pub f32);

/// `base · γ^⌊t / step⌋` (StepLR).
pub struct StepLr {
    /// Rate for the first `step_size` epochs (the optimizer's initial rate in PyTorch).
    pub base: f32,
    /// Epochs between decays; must be positive (`lr` panics otherwise).
    pub step_size: usize,
    /// Factor applied at each decay, e.g. `0.1`.
    pub gamma: f32,
}

/// `base · γ^(number of milestones ≤ t)` (MultiStepLR).
pub struct MultiStepLr {
    /// Rate before the first milestone.
    pub base: f32,
    /// Epochs at which the rate is multiplied by `gamma`; order does not matter, and a repeated
    /// milestone decays twice.
    pub milestones: Vec<usize>,
    /// Factor applied at each milestone, e.g. `0.1`.
    pub gamma: f32,
}

/// `base · γ^t` (ExponentialLR).
pub struct ExponentialLr {
    /// Rate at `t = 0`.
    pub base: f32,
    /// Factor applied every epoch, e.g. `0.95`.
    pub gamma: f32,
}

/// `η_min + (base - η_min) · (1 + cos(π t / T_max)) / 2` (CosineAnnealingLR).
pub struct CosineAnnealingLr {
    /// Rate at `t = 0`, the top of the cosine.
    pub base: f32,
    /// Half-period: the rate reaches `eta_min` at `t = t_max` and, past it, rises again (as
    /// PyTorch's closed form does). Must be positive (`lr` panics otherwise).
    pub t_max: usize,
    /// Lowest rate, reached at `t = t_max`.
    pub eta_min: f32,
}

/// One-cycle (OneCycleLR, cosine annealing): from `max/div_factor` up to `max` over the first
/// `pct_start` of `total_steps`, then down to `initial/final_div_factor`.
pub struct OneCycleLr {
    /// Peak rate, reached at step `pct_start · total_steps - 1`.
    pub max_lr: f32,
    /// Length of the cycle in steps; the rate stays at its minimum after it.
    pub total_steps: usize,
    /// Fraction of the cycle spent warming up, in `(0, 1)`; PyTorch's default is `0.3`.
    pub pct_start: f32,
    /// The starting rate is `max_lr / div_factor` (default 25).
    pub div_factor: f32,
    /// The final rate is `max_lr / div_factor / final_div_factor` (default `1e4`).
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
