//! Per-lane arithmetic of the PTX subset, on raw register bits (every register is a `u64`
//! whose low `ty.bits()` bits hold the value).
//!
//! Float results are the bits a GPU gives where PTX defines them exactly: `add`, `sub`, `mul`,
//! `fma`, `div.rn`, `sqrt.rn`, `rcp.rn` round correctly in every rounding mode (directed
//! modes are derived from the exact error of the f64 computation, see [`round_f32`]). The
//! `.approx` instructions are computed correctly rounded, which is within the error bound the
//! PTX ISA documents for each (e.g. `ex2.approx.f32`: 2 ulp); a GPU may differ from them in
//! the last bits. `.ftz` flushes subnormal inputs and results to zero of the same sign.

// Items named after the PTX ISA (types, state spaces, opcodes) or internal to the simulator:
// the ISA manual and the module comment above document them.
#![allow(missing_docs)]

use super::ptx::{BoolOp, Cmp, MulMode, Op, Round, Ty};

#[inline]
pub fn mask(ty: Ty) -> u64 {
    match ty.bits() {
        64 => u64::MAX,
        b => (1u64 << b) - 1,
    }
}

#[inline]
pub fn sext(x: u64, bits: u32) -> i64 {
    let s = 64 - bits;
    ((x << s) as i64) >> s
}

#[inline]
pub fn f32_of(x: u64) -> f32 {
    f32::from_bits(x as u32)
}

#[inline]
pub fn bits_f32(x: f32) -> u64 {
    x.to_bits() as u64
}

#[inline]
fn ftz32(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// The f32 nearest to the exact value `s + err` in direction `round` (`s` an f64, `err` the
/// exact error of computing it, |err| <= half an ulp of `s`).
pub fn round_f32(s: f64, err: f64, round: Round) -> f32 {
    let nearest = s as f32;
    if !s.is_finite() {
        return nearest;
    }
    let n = nearest as f64;
    // Exact value relative to `nearest`: sign of (s + err) - n.
    let above = n < s || (n == s && err > 0.0);
    let below = n > s || (n == s && err < 0.0);
    match round {
        Round::Rm | Round::Rmi => {
            if below {
                next_down(nearest)
            } else {
                nearest
            }
        }
        Round::Rp | Round::Rpi => {
            if above {
                next_up(nearest)
            } else {
                nearest
            }
        }
        Round::Rz | Round::Rzi => {
            if (nearest > 0.0 && below) || (nearest < 0.0 && above) {
                if nearest > 0.0 {
                    next_down(nearest)
                } else {
                    next_up(nearest)
                }
            } else if nearest == 0.0 || nearest.is_infinite() {
                // Overflow to infinity rounds to the largest finite value toward zero.
                if nearest.is_infinite() {
                    f32::MAX.copysign(nearest)
                } else {
                    nearest
                }
            } else {
                nearest
            }
        }
        _ => nearest,
    }
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let b = x.to_bits();
    f32::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// TwoSum: the exact error of `a + b` rounded to f64.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

fn f32_add(a: f32, b: f32, round: Round) -> f32 {
    match round {
        Round::Default | Round::Rn => a + b,
        r => {
            let (s, e) = two_sum(a as f64, b as f64);
            exact_zero_sign(round_f32(s, e, r), a, b, r)
        }
    }
}

/// IEEE 754's sign of an exact zero sum `x + y`: the common sign when both are zeros of one
/// sign, otherwise -0 when rounding down and +0 in every other mode.
fn exact_zero_sign(r: f32, x: f32, y: f32, round: Round) -> f32 {
    if r != 0.0 || x + y != 0.0 {
        return r;
    }
    if x == 0.0 && y == 0.0 && x.is_sign_negative() == y.is_sign_negative() {
        return if x.is_sign_negative() { -0.0 } else { 0.0 };
    }
    if matches!(round, Round::Rm | Round::Rmi) {
        -0.0
    } else {
        0.0
    }
}

fn f32_mul(a: f32, b: f32, round: Round) -> f32 {
    match round {
        Round::Default | Round::Rn => a * b,
        // The product of two f32 is exact in f64.
        r => round_f32(a as f64 * b as f64, 0.0, r),
    }
}

fn f32_fma(a: f32, b: f32, c: f32, round: Round) -> f32 {
    match round {
        Round::Default | Round::Rn => a.mul_add(b, c),
        r => {
            let product = a as f64 * b as f64;
            let (s, e) = two_sum(product, c as f64);
            let out = round_f32(s, e, r);
            // The product is exact in f64; as an f32 it may not be, but only its sign and
            // whether it is zero matter for the sign of an exact zero.
            let p = if product == 0.0 {
                product as f32
            } else {
                product.signum() as f32
            };
            if s == 0.0 && e == 0.0 {
                exact_zero_sign(out, p, if p == 0.0 { c } else { -p }, r)
            } else {
                out
            }
        }
    }
}

/// PTX `min`/`max` of floats: NaN only if both are NaN; -0 orders below +0.
fn f32_minmax(a: f32, b: f32, max: bool) -> f32 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f32::from_bits(0x7fff_ffff),
        (true, false) => b,
        (false, true) => a,
        _ => {
            if a == b {
                // Equal, possibly zeros of different sign.
                let neg = a.is_sign_negative() && b.is_sign_negative();
                let any_neg = a.is_sign_negative() || b.is_sign_negative();
                if max {
                    if neg {
                        a
                    } else {
                        a.abs()
                    }
                } else if any_neg {
                    -a.abs()
                } else {
                    a
                }
            } else if (a > b) == max {
                a
            } else {
                b
            }
        }
    }
}

fn float_compare(cmp: Cmp, a: f64, b: f64) -> bool {
    let nan = a.is_nan() || b.is_nan();
    match cmp {
        Cmp::Eq => !nan && a == b,
        Cmp::Ne => !nan && a != b,
        Cmp::Lt => !nan && a < b,
        Cmp::Le => !nan && a <= b,
        Cmp::Gt => !nan && a > b,
        Cmp::Ge => !nan && a >= b,
        Cmp::Equ => nan || a == b,
        Cmp::Neu => nan || a != b,
        Cmp::Ltu => nan || a < b,
        Cmp::Leu => nan || a <= b,
        Cmp::Gtu => nan || a > b,
        Cmp::Geu => nan || a >= b,
        Cmp::Num => !nan,
        Cmp::Nan => nan,
        Cmp::Lo | Cmp::Ls | Cmp::Hi | Cmp::Hs => false,
    }
}

fn int_compare(cmp: Cmp, ty: Ty, a: u64, b: u64) -> Result<bool, String> {
    let bits = ty.bits();
    let (sa, sb) = (sext(a, bits), sext(b, bits));
    let (ua, ub) = (a & mask(ty), b & mask(ty));
    let signed = ty.is_signed();
    Ok(match cmp {
        Cmp::Eq => ua == ub,
        Cmp::Ne => ua != ub,
        Cmp::Lt => {
            if signed {
                sa < sb
            } else {
                ua < ub
            }
        }
        Cmp::Le => {
            if signed {
                sa <= sb
            } else {
                ua <= ub
            }
        }
        Cmp::Gt => {
            if signed {
                sa > sb
            } else {
                ua > ub
            }
        }
        Cmp::Ge => {
            if signed {
                sa >= sb
            } else {
                ua >= ub
            }
        }
        Cmp::Lo => ua < ub,
        Cmp::Ls => ua <= ub,
        Cmp::Hi => ua > ub,
        Cmp::Hs => ua >= ub,
        _ => return Err(format!("comparison {cmp:?} on an integer type")),
    })
}

/// `setp`: the comparison of `a` and `b`, before combining with `c`.
pub fn setp(cmp: Cmp, ty: Ty, a: u64, b: u64) -> Result<bool, String> {
    match ty {
        Ty::F32 => Ok(float_compare(cmp, f32_of(a) as f64, f32_of(b) as f64)),
        Ty::F64 => Ok(float_compare(cmp, f64::from_bits(a), f64::from_bits(b))),
        Ty::F16 => Ok(float_compare(
            cmp,
            half::f16::from_bits(a as u16).to_f64(),
            half::f16::from_bits(b as u16).to_f64(),
        )),
        _ => int_compare(cmp, ty, a, b),
    }
}

pub fn combine(op: Option<BoolOp>, x: bool, c: bool) -> bool {
    match op {
        None => x,
        Some(BoolOp::And) => x && c,
        Some(BoolOp::Or) => x || c,
        Some(BoolOp::Xor) => x ^ c,
    }
}

fn unsupported(op: &Op, ty: Ty) -> String {
    format!("{op:?} on .{ty:?} is not implemented by cuda-sim")
}

/// Every two- and three-operand arithmetic instruction (not memory, control or warp ops).
#[inline]
pub fn compute(op: &Op, ty: Ty, a: u64, b: u64, c: u64) -> Result<u64, String> {
    let m = mask(ty);
    let bits = ty.bits();
    Ok(match (*op, ty) {
        (Op::Mov, _) => a,
        (Op::Selp, _) => {
            if c & 1 != 0 {
                a
            } else {
                b
            }
        }
        (Op::Add { round, .. }, Ty::F32) => bits_f32(f32_add(f32_of(a), f32_of(b), round)),
        (Op::Sub { round }, Ty::F32) => bits_f32(f32_add(f32_of(a), -f32_of(b), round)),
        (Op::Mul { round, .. }, Ty::F32) => bits_f32(f32_mul(f32_of(a), f32_of(b), round)),
        (Op::Fma { round }, Ty::F32) => bits_f32(f32_fma(f32_of(a), f32_of(b), f32_of(c), round)),
        (Op::Div { approx, .. }, Ty::F32) => {
            let (x, y) = (f32_of(a), f32_of(b));
            // div.approx.f32 computes x * (1/y); div.full is within 2 ulp. Both are taken
            // as the correctly rounded quotient (within their documented error).
            let _ = approx;
            bits_f32(x / y)
        }
        (Op::Min, Ty::F32) => bits_f32(f32_minmax(f32_of(a), f32_of(b), false)),
        (Op::Max, Ty::F32) => bits_f32(f32_minmax(f32_of(a), f32_of(b), true)),
        (Op::Neg, Ty::F32) => a ^ 0x8000_0000,
        (Op::Abs, Ty::F32) => a & 0x7fff_ffff,
        (Op::Add { .. }, Ty::F64) => (f64::from_bits(a) + f64::from_bits(b)).to_bits(),
        (Op::Sub { .. }, Ty::F64) => (f64::from_bits(a) - f64::from_bits(b)).to_bits(),
        (Op::Mul { .. }, Ty::F64) => (f64::from_bits(a) * f64::from_bits(b)).to_bits(),
        (Op::Fma { .. }, Ty::F64) => f64::from_bits(a)
            .mul_add(f64::from_bits(b), f64::from_bits(c))
            .to_bits(),
        (Op::Div { .. }, Ty::F64) => (f64::from_bits(a) / f64::from_bits(b)).to_bits(),
        (Op::Neg, Ty::F64) => a ^ (1 << 63),
        (Op::Abs, Ty::F64) => a & !(1 << 63),
        (Op::Ex2 { ftz }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            let y = (x as f64).exp2() as f32;
            bits_f32(if ftz { ftz32(y) } else { y })
        }
        (Op::Lg2 { ftz }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            let y = (x as f64).log2() as f32;
            bits_f32(if ftz { ftz32(y) } else { y })
        }
        (Op::Rcp { ftz, .. }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            let y = 1.0 / x;
            bits_f32(if ftz { ftz32(y) } else { y })
        }
        (Op::Sqrt { ftz, .. }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            bits_f32(x.sqrt())
        }
        (Op::Rsqrt { ftz }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            bits_f32((1.0 / (x as f64).sqrt()) as f32)
        }
        (Op::Sin { ftz }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            bits_f32((x as f64).sin() as f32)
        }
        (Op::Cos { ftz }, Ty::F32) => {
            let x = if ftz { ftz32(f32_of(a)) } else { f32_of(a) };
            bits_f32((x as f64).cos() as f32)
        }
        (Op::Tanh, Ty::F32) => bits_f32((f32_of(a) as f64).tanh() as f32),
        (Op::Rcp { .. }, Ty::F64) => (1.0 / f64::from_bits(a)).to_bits(),
        (Op::Sqrt { .. }, Ty::F64) => f64::from_bits(a).sqrt().to_bits(),
        (op, t) if t.is_float() => return Err(unsupported(&op, t)),
        // Integers and bits.
        (Op::Add { sat, .. }, _) => {
            if sat && ty == Ty::S32 {
                (sext(a, 32) as i32).saturating_add(sext(b, 32) as i32) as u32 as u64
            } else {
                a.wrapping_add(b) & m
            }
        }
        (Op::Sub { .. }, _) => a.wrapping_sub(b) & m,
        (Op::Mul { mode, .. }, _) | (Op::Mad { mode }, _) => {
            let add = matches!(op, Op::Mad { .. });
            let product = mul(mode, ty, a, b);
            let width = if mode == MulMode::Wide {
                2 * bits
            } else {
                bits
            };
            let wm = if width >= 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            if add {
                product.wrapping_add(c) & wm
            } else {
                product & wm
            }
        }
        (Op::Div { .. }, _) => {
            if b & m == 0 {
                // Division by zero is undefined in PTX; a GPU gives all ones.
                m
            } else if ty.is_signed() {
                (sext(a, bits).wrapping_div(sext(b, bits)) as u64) & m
            } else {
                ((a & m) / (b & m)) & m
            }
        }
        (Op::Rem, _) => {
            if b & m == 0 {
                a & m
            } else if ty.is_signed() {
                (sext(a, bits).wrapping_rem(sext(b, bits)) as u64) & m
            } else {
                ((a & m) % (b & m)) & m
            }
        }
        (Op::Min, _) => {
            if ty.is_signed() {
                (sext(a, bits).min(sext(b, bits)) as u64) & m
            } else {
                (a & m).min(b & m)
            }
        }
        (Op::Max, _) => {
            if ty.is_signed() {
                (sext(a, bits).max(sext(b, bits)) as u64) & m
            } else {
                (a & m).max(b & m)
            }
        }
        (Op::Neg, _) => a.wrapping_neg() & m,
        (Op::Abs, _) => (sext(a, bits).wrapping_abs() as u64) & m,
        (Op::And, Ty::Pred) => a & b & 1,
        (Op::Or, Ty::Pred) => (a | b) & 1,
        (Op::Xor, Ty::Pred) => (a ^ b) & 1,
        (Op::Not, Ty::Pred) => !a & 1,
        (Op::And, _) => a & b & m,
        (Op::Or, _) => (a | b) & m,
        (Op::Xor, _) => (a ^ b) & m,
        (Op::Not, _) => !a & m,
        (Op::Shl, _) => {
            let s = b & 0xffff_ffff;
            if s >= bits as u64 {
                0
            } else {
                (a << s) & m
            }
        }
        (Op::Shr, _) => {
            let s = (b & 0xffff_ffff).min(bits as u64);
            if ty.is_signed() {
                let v = sext(a, bits);
                ((if s >= bits as u64 {
                    v >> (bits - 1).min(63)
                } else {
                    v >> s
                }) as u64)
                    & m
            } else if s >= bits as u64 {
                0
            } else {
                (a & m) >> s
            }
        }
        (Op::Popc, _) => (a & m).count_ones() as u64,
        (Op::Clz, _) => ((a & m).leading_zeros() - (64 - bits)) as u64,
        (Op::Brev, _) => (a & m).reverse_bits() >> (64 - bits),
        (op, t) => return Err(unsupported(&op, t)),
    })
}

/// [`compute`] over 32 lanes, with the dispatch hoisted out of the lane loop for the
/// instructions that dominate strata's kernels (f32 arithmetic, 32/64-bit integer address
/// arithmetic, moves and selects); the rest go lane by lane.
pub fn compute_lanes(
    op: &Op,
    ty: Ty,
    a: &[u64; 32],
    b: &[u64; 32],
    c: &[u64; 32],
    d: &mut [u64; 32],
) -> Result<(), String> {
    macro_rules! lanes {
        (|$x:ident, $y:ident, $z:ident| $e:expr) => {{
            for l in 0..32 {
                let ($x, $y, $z) = (a[l], b[l], c[l]);
                d[l] = $e;
            }
            return Ok(());
        }};
    }
    let rn = |r: Round| matches!(r, Round::Rn | Round::Default);
    match (*op, ty) {
        (Op::Mov, _) => lanes!(|x, _y, _z| x),
        (Op::Selp, _) => lanes!(|x, y, z| if z & 1 != 0 { x } else { y }),
        (Op::Add { round, .. }, Ty::F32) if rn(round) => {
            lanes!(|x, y, _z| bits_f32(f32_of(x) + f32_of(y)))
        }
        (Op::Sub { round }, Ty::F32) if rn(round) => {
            lanes!(|x, y, _z| bits_f32(f32_of(x) - f32_of(y)))
        }
        (Op::Mul { round, .. }, Ty::F32) if rn(round) => {
            lanes!(|x, y, _z| bits_f32(f32_of(x) * f32_of(y)))
        }
        (Op::Fma { round }, Ty::F32) if rn(round) => {
            lanes!(|x, y, z| bits_f32(f32_of(x).mul_add(f32_of(y), f32_of(z))))
        }
        (Op::Add { sat: false, .. }, Ty::S32 | Ty::U32 | Ty::B32) => {
            lanes!(|x, y, _z| (x as u32).wrapping_add(y as u32) as u64)
        }
        (Op::Add { .. }, Ty::S64 | Ty::U64 | Ty::B64) => lanes!(|x, y, _z| x.wrapping_add(y)),
        (Op::Sub { .. }, Ty::S32 | Ty::U32 | Ty::B32) => {
            lanes!(|x, y, _z| (x as u32).wrapping_sub(y as u32) as u64)
        }
        (
            Op::Mul {
                mode: MulMode::Lo, ..
            },
            Ty::S32 | Ty::U32,
        ) => {
            lanes!(|x, y, _z| (x as u32).wrapping_mul(y as u32) as u64)
        }
        (Op::Mad { mode: MulMode::Lo }, Ty::S32 | Ty::U32) => {
            lanes!(|x, y, z| (x as u32).wrapping_mul(y as u32).wrapping_add(z as u32) as u64)
        }
        (
            Op::Mul {
                mode: MulMode::Wide,
                ..
            },
            Ty::S32,
        ) => {
            lanes!(|x, y, _z| ((x as u32 as i32 as i64) * (y as u32 as i32 as i64)) as u64)
        }
        (
            Op::Mul {
                mode: MulMode::Wide,
                ..
            },
            Ty::U32,
        ) => {
            lanes!(|x, y, _z| (x as u32 as u64) * (y as u32 as u64))
        }
        (Op::Shl, Ty::B64) => lanes!(|x, y, _z| if (y as u32) < 64 { x << (y as u32) } else { 0 }),
        (Op::Shl, Ty::B32) => {
            lanes!(|x, y, _z| if (y as u32) < 32 {
                ((x as u32) << (y as u32)) as u64
            } else {
                0
            })
        }
        (Op::And, Ty::B32) => lanes!(|x, y, _z| (x & y) & 0xffff_ffff),
        (Op::And, Ty::B64) => lanes!(|x, y, _z| x & y),
        (Op::Or, Ty::B32) => lanes!(|x, y, _z| (x | y) & 0xffff_ffff),
        _ => {
            for l in 0..32 {
                d[l] = compute(op, ty, a[l], b[l], c[l])?;
            }
            Ok(())
        }
    }
}

fn mul(mode: MulMode, ty: Ty, a: u64, b: u64) -> u64 {
    let bits = ty.bits();
    if ty.is_signed() {
        let p = sext(a, bits) as i128 * sext(b, bits) as i128;
        match mode {
            MulMode::Lo | MulMode::Wide => p as u64,
            MulMode::Hi => (p >> bits) as u64,
        }
    } else {
        let m = mask(ty) as u128;
        let p = (a as u128 & m) * (b as u128 & m);
        match mode {
            MulMode::Lo | MulMode::Wide => p as u64,
            MulMode::Hi => (p >> bits) as u64,
        }
    }
}

/// `cvt.to.from` with its rounding, saturation and flush modifiers.
pub fn convert(
    to: Ty,
    from: Ty,
    round: Round,
    sat: bool,
    ftz: bool,
    a: u64,
) -> Result<u64, String> {
    let flush = |x: f32| if ftz { ftz32(x) } else { x };
    let err = || format!("cvt.{to:?}.{from:?} with {round:?} is not implemented by cuda-sim");
    // Read the source as an exact f64 or an integer.
    if !from.is_float() && !to.is_float() {
        let v = if from.is_signed() {
            sext(a, from.bits()) as i128
        } else {
            (a & mask(from)) as i128
        };
        let v = if sat {
            let (lo, hi) = int_range(to);
            v.clamp(lo, hi)
        } else {
            v
        };
        return Ok((v as u64) & mask(to));
    }
    // A 64-bit integer is not exact in f64: round it to f32 once, directly.
    if to == Ty::F32 && matches!(round, Round::Rn | Round::Default) {
        match from {
            Ty::S64 => return Ok(bits_f32(a as i64 as f32)),
            Ty::U64 | Ty::B64 => return Ok(bits_f32(a as f32)),
            _ => {}
        }
    }
    let value: f64 = match from {
        Ty::F32 => flush(f32_of(a)) as f64,
        Ty::F64 => f64::from_bits(a),
        Ty::F16 => half::f16::from_bits(a as u16).to_f64(),
        t if t.is_signed() => sext(a, t.bits()) as f64,
        t => (a & mask(t)) as f64,
    };
    if from.bits() == 64
        && !from.is_float()
        && to.is_float()
        && round != Round::Rn
        && round != Round::Default
    {
        return Err(err());
    }
    if to.is_float() {
        let integral = |x: f64| match round {
            Round::Rni => x.round_ties_even(),
            Round::Rzi => x.trunc(),
            Round::Rmi => x.floor(),
            Round::Rpi => x.ceil(),
            _ => x,
        };
        let v = integral(value);
        let out = match to {
            Ty::F32 => {
                let r = match round {
                    Round::Rz | Round::Rm | Round::Rp => round_f32(v, 0.0, round),
                    _ => {
                        if from == Ty::F64 || from.bits() == 64 {
                            v as f32
                        } else {
                            // Integers of 32 bits and f32 values are exact in f64: nearest.
                            v as f32
                        }
                    }
                };
                let r = if sat {
                    if r.is_nan() {
                        0.0
                    } else {
                        r.clamp(0.0, 1.0)
                    }
                } else {
                    r
                };
                bits_f32(flush(r))
            }
            Ty::F64 => {
                let r = if sat {
                    if v.is_nan() {
                        0.0
                    } else {
                        v.clamp(0.0, 1.0)
                    }
                } else {
                    v
                };
                r.to_bits()
            }
            Ty::F16 => {
                if !matches!(round, Round::Rn | Round::Default) {
                    return Err(err());
                }
                half::f16::from_f64(v).to_bits() as u64
            }
            _ => return Err(err()),
        };
        return Ok(out);
    }
    // Float to integer: round to an integral value, NaN to 0, saturate to the range.
    let v = match round {
        Round::Rni | Round::Rn | Round::Default => value.round_ties_even(),
        Round::Rzi | Round::Rz => value.trunc(),
        Round::Rmi | Round::Rm => value.floor(),
        Round::Rpi | Round::Rp => value.ceil(),
    };
    let (lo, hi) = int_range(to);
    let i = if v.is_nan() {
        0
    } else if v <= lo as f64 {
        lo
    } else if v >= hi as f64 {
        hi
    } else {
        v as i128
    };
    Ok((i as u64) & mask(to))
}

fn int_range(t: Ty) -> (i128, i128) {
    let bits = t.bits();
    if t.is_signed() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_rounding_of_fma_matches_the_exact_value() {
        // 1 + 2^-30 is not an f32: rm rounds down to 1, rp up to 1 + 2^-23.
        let a = 1.0f32;
        let b = 2f32.powi(-30);
        assert_eq!(f32_fma(a, b, 1.0, Round::Rm), 1.0);
        assert_eq!(f32_fma(a, b, 1.0, Round::Rp), 1.0 + f32::EPSILON);
        assert_eq!(f32_fma(a, -b, 1.0, Round::Rm), 1.0 - f32::EPSILON / 2.0);
        assert_eq!(f32_fma(a, -b, 1.0, Round::Rz), 1.0 - f32::EPSILON / 2.0);
        assert_eq!(f32_fma(a, b, 1.0, Round::Rn), 1.0);
    }

    #[test]
    fn an_exact_zero_sum_is_negative_only_when_rounding_down() {
        assert!(f32_add(1.0, -1.0, Round::Rm).is_sign_negative());
        assert!(f32_add(1.0, -1.0, Round::Rp).is_sign_positive());
        assert!(f32_add(-0.0, -0.0, Round::Rp).is_sign_negative());
        assert!(f32_fma(2.0, 0.5, -1.0, Round::Rm).is_sign_negative());
    }

    #[test]
    fn a_64_bit_integer_rounds_to_f32_once() {
        // 2^53 + 2^29 + 1: through f64 it would become 2^53 + 2^29, a tie that rounds down.
        let x = (1u64 << 53) + (1 << 29) + 1;
        let got = convert(Ty::F32, Ty::U64, Round::Rn, false, false, x).unwrap();
        assert_eq!(got as u32, 0x5A00_0001);
    }

    #[test]
    fn float_to_int_saturates_and_maps_nan_to_zero() {
        let nan = bits_f32(f32::NAN);
        assert_eq!(
            convert(Ty::S32, Ty::F32, Round::Rzi, false, false, nan).unwrap(),
            0
        );
        let big = bits_f32(3e9);
        assert_eq!(
            convert(Ty::S32, Ty::F32, Round::Rzi, false, false, big).unwrap(),
            i32::MAX as u32 as u64
        );
        let neg = bits_f32(-2.5);
        assert_eq!(
            convert(Ty::S32, Ty::F32, Round::Rni, false, false, neg).unwrap() as u32 as i32,
            -2
        );
        assert_eq!(
            convert(Ty::S32, Ty::F32, Round::Rmi, false, false, neg).unwrap() as u32 as i32,
            -3
        );
    }

    #[test]
    fn min_max_follow_ptx_for_nan_and_signed_zero() {
        assert_eq!(f32_minmax(f32::NAN, 2.0, true), 2.0);
        assert!(f32_minmax(-0.0, 0.0, false).is_sign_negative());
        assert!(f32_minmax(-0.0, 0.0, true).is_sign_positive());
    }
}
