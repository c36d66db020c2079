//! The one place that asks the CPU what it can do, and runs loops with the widest vectors it
//! has.
//!
//! Kernels with hand-written variants (AVX-512 and AVX2+FMA intrinsics beside a portable loop)
//! ask [`Isa::detected`] which one to run, or [`has_avx512`] / [`has_avx2_fma`] for a single
//! feature; no other file calls `is_x86_feature_detected!`. Tests that compare every variant
//! with the portable one walk [`Isa::available`].
//!
//! The workspace is compiled for baseline x86-64 (SSE2, four lanes), so that one binary runs on
//! any x86-64 machine. Loops that LLVM can vectorise (the elementwise maps, `tanh`, `exp`) then
//! get four-lane code. [`widest`] calls its body through a function compiled with AVX-512 (or
//! AVX2) enabled, chosen at run time; the body is inlined there and vectorised 16 (or 8) lanes
//! wide. Rust never fuses `a * b + c` into an FMA on its own, so every element sees the same
//! IEEE operations at every width: the results are bit-identical on every path.
//!
//! A closure is only compiled for the wide unit if LLVM inlines it into that function, which it
//! declines for large bodies (a whole Philox generator, say). The crate-internal `widest_fn!`
//! is for those: it defines a named function whose body is compiled once plainly and once with
//! AVX-512.

use std::sync::OnceLock;

/// The instruction sets strata's CPU kernels have variants for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// What the target compiles plain Rust to (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// x86-64 with AVX2 and FMA (Haswell, Zen and later).
    Avx2Fma,
    /// x86-64 with AVX-512F (Skylake-SP, Ice Lake, Zen 4 and later).
    Avx512,
}

impl Isa {
    /// The widest instruction set this CPU runs, detected once per process.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(detect)
    }

    /// Every instruction set this CPU runs, narrowest first: the variants a test can compare.
    pub fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2Fma, Isa::Avx512]
            .into_iter()
            .filter(|&isa| isa <= Isa::detected())
            .collect()
    }
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2Fma;
        }
    }
    Isa::Portable
}

/// Whether this CPU has AVX-512F: the condition for calling a `#[target_feature(enable =
/// "avx512f")]` function.
#[inline]
pub fn has_avx512() -> bool {
    Isa::detected() >= Isa::Avx512
}

/// Whether this CPU has AVX2 and FMA: the condition for calling a `#[target_feature(enable =
/// "avx2,fma")]` function.
#[inline]
pub fn has_avx2_fma() -> bool {
    Isa::detected() >= Isa::Avx2Fma
}

/// Runs `body` compiled for the widest vector unit this CPU has.
#[inline(always)]
pub fn widest<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { with_avx512(body) };
        }
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { with_avx2(body) };
        }
    }
    body()
}

/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Defines `fn $name(args)` that runs `$body` compiled for AVX-512 where the CPU has it, and as
/// plain code elsewhere: [`widest`] for bodies too large to be inlined from a closure.
macro_rules! widest_fn {
    (fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest_fn;
