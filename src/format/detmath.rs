//! Reproducible f32 exp, sigmoid and tanh, built only from operations every IEEE / Vulkan
//! device rounds correctly (add, subtract, multiply, compare, bit moves): no library `exp`,
//! no division. The WGSL kernels carry the same code (`shaders/numerics.wgsl`), so float lanes
//! whose activations are computed rather than looked up agree bit for bit across devices.
//! Accuracy: a few ulp, far inside the 1e-5 we are held to against onnxruntime.

/// Flush-to-zero: an f32 subnormal (or -0) becomes +0.
#[inline]
pub fn ftz(v: f32) -> f32 {
    if v.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        v
    }
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that k * LN2_HI is exact for |k| < 2^15 (Cody & Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// exp(x) for x in [-87, 88] (clamped), via 2^k * P(r), P the degree-7 Taylor polynomial.
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E).round_ties_even();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// 1/d for d >= 1: a bit-trick first guess and four Newton steps.
pub fn recip(d: f32) -> f32 {
    let mut y = f32::from_bits(0x7ef3_11c3u32.wrapping_sub(d.to_bits()));
    for _ in 0..4 {
        y = y * (2.0 - d * y);
    }
    y
}

/// 1 / (1 + exp(-x)).
pub fn sigmoid(x: f32) -> f32 {
    recip(1.0 + exp(-x.clamp(-87.0, 87.0)))
}

/// tanh(x): an odd polynomial near 0, 1 - 2 / (1 + exp(2|x|)) elsewhere.
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let y = if a < 0.0625 {
        let a2 = a * a;
        a + a * (a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))))
    } else {
        1.0 - 2.0 * recip(1.0 + exp((2.0 * a).min(87.0)))
    };
    if x < 0.0 {
        -y
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        ((a as f64 - b) / (b32.abs() as f64 * f32::EPSILON as f64).max(f32::MIN_POSITIVE as f64))
            .abs()
    }

    #[test]
    fn close_to_the_real_functions() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let mut x = -30.0f32;
        while x < 30.0 {
            worst.0 = worst.0.max(ulps(exp(x), (x as f64).exp()));
            worst.1 = worst
                .1
                .max(((sigmoid(x) as f64) - 1.0 / (1.0 + (-(x as f64)).exp())).abs());
            worst.2 = worst.2.max(((tanh(x) as f64) - (x as f64).tanh()).abs());
            x += 0.001_37;
        }
        assert!(worst.0 < 4.0, "exp worst {} ulp", worst.0);
        assert!(worst.1 < 2e-7, "sigmoid worst abs {}", worst.1);
        assert!(worst.2 < 2e-7, "tanh worst abs {}", worst.2);
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(sigmoid(-200.0), recip(1.0 + exp(87.0)));
        assert!(sigmoid(200.0) >= 0.999_999_9);
    }
}
