//! Running a loop with the widest vectors the CPU has.
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

/// Runs `body` compiled for the widest vector unit this CPU has.
#[inline(always)]
pub fn widest<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { with_avx512(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
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
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest_fn;
