//! Whether the CPU kernels may use the instruction sets the machine has, decided once per
//! process: `LSTM_DSE_PORTABLE_KERNELS` (set to anything) forces the portable build of every
//! kernel, for comparing them. The kernels check it on every product and every unit, so it is
//! read from the environment once, not per call (`is_x86_feature_detected!` caches itself).

use std::sync::OnceLock;

/// True when `LSTM_DSE_PORTABLE_KERNELS` is set.
pub fn portable() -> bool {
    static PORTABLE: OnceLock<bool> = OnceLock::new();
    *PORTABLE.get_or_init(|| std::env::var_os("LSTM_DSE_PORTABLE_KERNELS").is_some())
}
