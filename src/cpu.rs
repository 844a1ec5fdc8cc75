//! Whether the CPU kernels may use the instruction sets the machine has, decided once per
//! process: `LSTM_DSE_PORTABLE_KERNELS` (set to anything) forces the portable build of every
//! kernel, for comparing them. The kernels check it on every product and every unit, so it is
//! read from the environment once, not per call (`is_x86_feature_detected!` caches itself).

use std::sync::OnceLock;

/// Whether the AVX2 builds may run: the CPU has AVX2 and the portable build is not forced.
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !portable() && is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// True when `LSTM_DSE_PORTABLE_KERNELS` is set.
pub fn portable() -> bool {
    static PORTABLE: OnceLock<bool> = OnceLock::new();
    *PORTABLE.get_or_init(|| std::env::var_os("LSTM_DSE_PORTABLE_KERNELS").is_some())
}
