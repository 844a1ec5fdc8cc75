//! The process's allocator: the system one, except that on Linux every allocation of at
//! least [`BIG`] bytes is its own anonymous mapping, and freed mappings are kept (up to
//! [`POOL_BYTES`]) for the next big allocation instead of being returned to the kernel.
//!
//! Why: an engine run allocates many buffers of tens of MB (rounded weights, codes, packed
//! panels, every layer's products and states) and frees them soon after; a trace does it
//! again for each of its configs. glibc maps each one above 32 MB afresh and unmaps it on
//! free, so the first write to each of its 4 KiB pages is a page fault (often a copy-on-write
//! of the zero page, with a TLB flush of the other cores): about 190 000 faults and 10-15% of
//! a trace's CPU time. A kept mapping is already backed: reusing it costs no fault, and
//! `alloc_zeroed` clears it with a `memset` (fresh anonymous mappings read as zero).
//! (Huge pages were tried instead: the kernel then clears every 2 MiB page in full on its
//! first touch, and that cost more than the faults it saved on this machine.)
//!
//! A phase whose buffers will not come back calls [`trim`] at its end (the policy
//! simulation, once its chunks are walked), so the pool does not hold them beside what follows.
//!
//! Allocations with an alignment above one page, and every allocation off Linux, go to
//! [`System`]. A block is ours exactly when its layout is [`mapped`], which `dealloc` and
//! `realloc` see too (Rust passes the allocation's layout back). Contents never depend on
//! which path served a block.

use std::alloc::{GlobalAlloc, Layout, System};

/// The smallest allocation given its own mapping.
pub const BIG: usize = 1 << 20;

/// Freed mappings kept for reuse, in bytes at most.
pub const POOL_BYTES: usize = 1 << 30;

/// Mappings are whole multiples of this (so that sizes that differ a little share them).
const GRAIN: usize = 1 << 20;

/// The allocator (see the module doc).
pub struct BigAlloc;

/// Whether a block of this layout is one of our mappings.
fn mapped(l: Layout) -> bool {
    cfg!(target_os = "linux") && l.size() >= BIG && l.align() <= 4096
}

/// The length of the mapping that holds `size` bytes.
fn span(size: usize) -> usize {
    size.div_ceil(GRAIN) * GRAIN
}

/// The bytes a block of `size` bytes takes: a mapping of whole grains from [`BIG`] on (on
/// Linux), else `size` (the system allocator's own rounding aside). For memory estimates.
pub fn footprint(size: u128) -> u128 {
    match cfg!(target_os = "linux") && size >= BIG as u128 {
        true => size.div_ceil(GRAIN as u128) * GRAIN as u128,
        false => size,
    }
}

#[cfg(target_os = "linux")]
mod map {
    use super::{span, POOL_BYTES};
    use std::sync::Mutex;

    const SLOTS: usize = 128;

    /// Kept mappings: (address, length); address 0 is an empty slot.
    struct Pool {
        slots: [(usize, usize); SLOTS],
        bytes: usize,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool {
        slots: [(0, 0); SLOTS],
        bytes: 0,
    });

    fn pool() -> std::sync::MutexGuard<'static, Pool> {
        POOL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A mapping for `size` bytes: a kept one (the shortest long enough, its excess tail
    /// unmapped; `true`: its contents are stale) or a fresh zeroed one (`false`); null if the
    /// kernel refuses.
    pub unsafe fn map(size: usize) -> (*mut u8, bool) {
        let len = span(size);
        let kept = {
            let mut pool = pool();
            let best = (0..SLOTS)
                .filter(|&i| pool.slots[i].0 != 0 && pool.slots[i].1 >= len)
                .min_by_key(|&i| pool.slots[i].1);
            best.map(|i| {
                let slot = std::mem::take(&mut pool.slots[i]);
                pool.bytes -= slot.1;
                slot
            })
        };
        if let Some((at, have)) = kept {
            if have > len {
                libc::munmap((at + len) as *mut libc::c_void, have - len);
            }
            return (at as *mut u8, true);
        }
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return (std::ptr::null_mut(), false);
        }
        (raw as *mut u8, false)
    }

    /// Bytes kept now.
    pub fn kept() -> usize {
        pool().bytes
    }

    /// Returns every kept mapping to the kernel.
    pub fn trim() {
        let kept: Vec<(usize, usize)> = {
            let mut pool = pool();
            pool.bytes = 0;
            let kept = pool.slots.iter().copied().filter(|s| s.0 != 0).collect();
            pool.slots = [(0, 0); SLOTS];
            kept
        };
        for (at, len) in kept {
            unsafe { libc::munmap(at as *mut libc::c_void, len) };
        }
    }

    /// Keeps the mapping of a freed block of `size` bytes, or unmaps it when the pool is full.
    pub unsafe fn unmap(p: *mut u8, size: usize) {
        let len = span(size);
        {
            let mut pool = pool();
            if pool.bytes + len <= POOL_BYTES {
                if let Some(i) = (0..SLOTS).find(|&i| pool.slots[i].0 == 0) {
                    pool.slots[i] = (p as usize, len);
                    pool.bytes += len;
                    return;
                }
            }
        }
        libc::munmap(p as *mut libc::c_void, len);
    }
}

/// Returns the freed mappings kept for reuse to the kernel: for the end of a phase whose
/// buffers will not come back (a run's chunks walked), so that what follows is not measured
/// (or held) beside them.
pub fn trim() {
    #[cfg(target_os = "linux")]
    map::trim();
}

/// Bytes of freed mappings kept for reuse now (0 off Linux).
pub fn kept_bytes() -> usize {
    #[cfg(target_os = "linux")]
    return map::kept();
    #[cfg(not(target_os = "linux"))]
    0
}

unsafe impl GlobalAlloc for BigAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if mapped(l) {
            return map::map(l.size()).0;
        }
        System.alloc(l)
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if mapped(l) {
            // A fresh mapping reads as zero; a kept one is cleared.
            let (p, stale) = map::map(l.size());
            if stale {
                std::ptr::write_bytes(p, 0, l.size());
            }
            return p;
        }
        System.alloc_zeroed(l)
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        #[cfg(target_os = "linux")]
        if mapped(l) {
            return map::unmap(p, l.size());
        }
        System.dealloc(p, l)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, l.align());
        if !mapped(l) && !mapped(new) {
            return System.realloc(p, l, new_size);
        }
        if mapped(l) && mapped(new) && span(l.size()) == span(new_size) {
            return p;
        }
        let q = self.alloc(new);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_blocks_are_zeroed_and_keep_their_contents_when_resized() {
        let mut v = vec![0u8; BIG + 12345];
        assert!(v.iter().all(|&b| b == 0));
        for (i, b) in v.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        // Grow within and beyond the mapping, shrink below BIG and back above it: the first
        // `valid` bytes keep the pattern, the rest are the fill.
        let mut valid = v.len();
        for size in [BIG + 20000, 3 * BIG, BIG - 1, BIG / 2, 2 * BIG] {
            v.resize(size, 7);
            v.shrink_to_fit();
            valid = valid.min(size);
            assert!(v
                .iter()
                .enumerate()
                .all(|(i, &b)| b == if i < valid { (i % 251) as u8 } else { 7 }));
        }
        let z = vec![0.0f64; BIG];
        assert!(z.iter().all(|&x| x == 0.0));
        // A kept mapping, written and freed, comes back zeroed from `alloc_zeroed`.
        for round in 0..3u8 {
            let mut w = vec![0u8; 2 * BIG];
            assert!(w.iter().all(|&b| b == 0), "round {round}");
            w.fill(round + 1);
        }
    }
}
