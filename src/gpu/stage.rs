//! The uniform stage of config lanes, read in windows. Each step `stage_lanes` copies the x
//! and previous h of every lane into one buffer, slab after slab (a slab: a block of
//! [`LANE_BLOCK`] sequences of one config in one direction, `I + H` vec4s), and
//! `step_lanes_staged` reads it as a uniform binding, which holds at most 64 KiB. A stage
//! larger than that is read a window of whole slabs at a time, one step dispatch a window,
//! each window's binding at an offset the device accepts (a multiple of
//! `min_uniform_buffer_offset_alignment`), as many slabs a window as fit. A step whose slabs
//! do not fit a binding that way is not staged.
//!
//! [`LANE_BLOCK`]: super::lstm::LANE_BLOCK

/// The windows of one layer's stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Windows {
    /// Slabs in the stage.
    slabs: usize,
    /// vec4s of one slab (`I + H`).
    slab_vec4s: usize,
    /// Slabs per window (the last one may hold fewer).
    per: usize,
    /// The offset alignment, in vec4s.
    align_vec4s: usize,
}

impl Windows {
    /// Windows of `slabs` slabs of `slab_vec4s` vec4s each, for a binding of `binding_vec4s`
    /// vec4s whose offset is a multiple of `align_bytes`; `None` when no windows fit.
    pub fn new(
        slabs: usize,
        slab_vec4s: usize,
        binding_vec4s: usize,
        align_bytes: usize,
    ) -> Option<Windows> {
        let align_vec4s = align_bytes.div_ceil(16).max(1);
        if slabs == 0 || slab_vec4s == 0 {
            return None;
        }
        // The most slabs a window such that every window, its binding at the aligned offset at
        // or before its first slab, ends inside the binding (a window whose first slab starts
        // past an aligned vec4 has that much less room).
        let fits = |per: usize| {
            (0..slabs).step_by(per).all(|first| {
                let start = first * slab_vec4s;
                let end = (first + per).min(slabs) * slab_vec4s;
                end - (start - start % align_vec4s) <= binding_vec4s
            })
        };
        let most = slabs.min(binding_vec4s / slab_vec4s);
        let per = (1..=most).rev().find(|&per| fits(per))?;
        Some(Windows {
            slabs,
            slab_vec4s,
            per,
            align_vec4s,
        })
    }

    pub fn count(&self) -> usize {
        self.slabs.div_ceil(self.per)
    }

    /// The first slab of window `w`.
    pub fn first(&self, w: usize) -> usize {
        w * self.per
    }

    /// The slabs of window `w`.
    pub fn len(&self, w: usize) -> usize {
        self.per.min(self.slabs - self.first(w))
    }

    /// The vec4 of the stage where window `w`'s binding starts (aligned, at or before its
    /// first slab).
    pub fn base(&self, w: usize) -> usize {
        let start = self.first(w) * self.slab_vec4s;
        start - start % self.align_vec4s
    }

    /// Bytes of a stage buffer that holds every slab and a binding of `binding_bytes` at every
    /// window's base.
    pub fn buffer_bytes(&self, binding_bytes: usize) -> usize {
        let last = self.count() - 1;
        (self.slabs * self.slab_vec4s * 16).max(self.base(last) * 16 + binding_bytes)
    }
}

/// The step uniforms (shaders/lstm.wgsl `Step`): `entries` of `align` bytes a step, and their
/// words. Config lanes read in `windows`: entry w of step s is window w's (first slab, and the
/// vec4 where its binding starts), phase 0. Otherwise entry e is phase e (policy lanes).
pub(super) fn step_words(
    steps: usize,
    align: usize,
    windows: Option<Windows>,
) -> (usize, Vec<u32>) {
    let entries = windows.map_or(1, |w| w.count()).max(3);
    let mut words = vec![0u32; entries * steps * align / 4];
    for s in 0..steps {
        for e in 0..entries {
            let at = (entries * s + e) * align / 4;
            let (phase, slab0, base) = match windows {
                Some(w) if e < w.count() => (0, w.first(e), w.base(e)),
                Some(_) => (0, 0, 0),
                None => (e, 0, 0),
            };
            words[at..at + 4].copy_from_slice(&[s, phase, slab0, base].map(|v| v as u32));
        }
    }
    (entries, words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every slab lies in exactly one window, in order, and every window's slabs lie
        /// inside its binding, which starts at an aligned offset inside the buffer; windows
        /// are as large as any that fit, and refused only where none does.
        #[test]
        fn windows_cover_every_slab_inside_their_bindings(
            slabs in 1usize..200,
            slab_vec4s in 1usize..3000,
            binding_vec4s in 1usize..5000,
            align_log2 in 4u32..9,
        ) {
            let align = 1usize << align_log2;
            // The oracle, from the definition: uniform windows of `per` slabs, each with its
            // binding at the largest aligned vec4 at or before its first slab, all inside it.
            let a = align / 16;
            let valid = |per: usize| {
                let mut first = 0;
                while first < slabs {
                    let base = (first * slab_vec4s) / a * a;
                    let last_end = (first + per).min(slabs) * slab_vec4s;
                    if last_end > base + binding_vec4s {
                        return false;
                    }
                    first += per;
                }
                true
            };
            let Some(w) = Windows::new(slabs, slab_vec4s, binding_vec4s, align) else {
                prop_assert!((1..=slabs).all(|per| !valid(per)), "refused, but windows fit");
                return Ok(());
            };
            // No larger window size works.
            prop_assert!((w.len(0) + 1..=slabs).all(|per| !valid(per)));
            let mut next = 0;
            for k in 0..w.count() {
                prop_assert_eq!(w.first(k), next);
                prop_assert!(w.len(k) >= 1);
                let base = w.base(k);
                prop_assert_eq!((base * 16) % align, 0);
                prop_assert!(base <= w.first(k) * slab_vec4s);
                let end = (w.first(k) + w.len(k)) * slab_vec4s;
                prop_assert!(end - base <= binding_vec4s, "window {} ends past its binding", k);
                prop_assert!(base * 16 + binding_vec4s * 16 <= w.buffer_bytes(binding_vec4s * 16));
                next += w.len(k);
            }
            prop_assert_eq!(next, slabs);
            prop_assert!(slabs * slab_vec4s * 16 <= w.buffer_bytes(binding_vec4s * 16));
        }
    }

    #[test]
    fn a_stage_that_fits_is_one_window_at_offset_zero() {
        let w = Windows::new(4, 1000, 4096, 256).unwrap();
        assert_eq!((w.count(), w.base(0), w.len(0)), (1, 0, 4));
        let w = Windows::new(8, 512, 4096, 256).unwrap();
        assert_eq!((w.count(), w.len(0), w.base(0)), (1, 8, 0));
    }

    #[test]
    fn the_issue_workloads() {
        // The 256 layer's trace: 8 configs x 4 blocks, 512 vec4s a slab, 64 KiB bindings.
        let w = Windows::new(32, 512, 4096, 256).unwrap();
        assert_eq!((w.count(), w.len(0), w.base(1)), (4, 8, 4096));
        // The 1024 layer: 2048 vec4s a slab, two a window.
        let w = Windows::new(4, 2048, 4096, 256).unwrap();
        assert_eq!(w.count(), 2);
        // A slab that is not a multiple of the alignment leaves room for the slack.
        let w = Windows::new(10, 1001, 4096, 256).unwrap();
        assert_eq!(w.len(0), 4);
        // Window 1 starts at vec4 4004; its binding at the aligned 4000.
        assert_eq!(w.base(1), 4000);
        // Slabs of 4088 vec4s start 8 vec4s past an aligned offset at worst, so each fits a
        // binding of 4096 alone (the first version allowed for 15 and refused them).
        let w = Windows::new(3, 4088, 4096, 256).unwrap();
        assert_eq!((w.count(), w.base(1)), (3, 4080));
        // A slab larger than the binding: not staged.
        assert_eq!(Windows::new(2, 4097, 4096, 256), None);
    }
}
