//! Shared by the integration tests: the GPU adapter, or a visible skip — except under CI
//! (`CI` set), where a missing adapter is a failure, so GPU comparisons can never pass
//! silently by comparing the CPU with itself.

#![allow(dead_code)]

use lstm_dse::gpu::{AdapterChoice, GpuContext};

/// Any adapter (lavapipe included), or `None` with a "skipping" line outside CI.
pub fn gpu_context() -> Option<GpuContext> {
    match GpuContext::new(AdapterChoice::Any) {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.adapter);
            Some(ctx)
        }
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but there is no GPU adapter (install mesa-vulkan-drivers): {e}")
        }
        Err(e) => {
            eprintln!("skipping: no adapter ({e})");
            None
        }
    }
}
