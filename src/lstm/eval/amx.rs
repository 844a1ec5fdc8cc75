//! The exact integer product of codes of at most 16 bits on AMX-INT8 tiles (Intel's Advanced
//! Matrix Extensions: `tdpb{ss,su,us,uu}d`, a 16 x 16 tile of 32-bit sums gaining 64 byte
//! products per element in one instruction), where the CPU has them.
//!
//! A code wider than a byte is split into bytes: `c = 256·h + l` with `h = c >> 8` (signed,
//! -128..=127 for any c that fits i16) and `l = c & 255` (unsigned), so
//!
//! ```text
//! a·b = 65536·(h_a·h_b) + 256·(h_a·l_b + l_a·h_b) + l_a·l_b
//! ```
//!
//! each a byte product the tiles take (signed x signed `ss`, signed x unsigned `su`, and so
//! on). An operand whose codes all fit a signed byte is one plane, used as it is. The three
//! sums (shifts 0, 8 and 16) are kept in three accumulator tiles and combined in i64.
//!
//! Exactness: every byte product is at most 255·255 < 2^16 and the middle tile gains at most
//! two of them per k, 65,280; blocks of [`KB`] = 16,384 k keep every 32-bit sum below 2^31
//! (16,384 · 65,280 < 2^30.1), and each block is widened into the i64 result. Integer sums do
//! not depend on their order, so the result equals the plain loop over k in i64 bit for bit,
//! whatever the tiling or the thread count (`exact::tests` and the tests below check it).
//!
//! Layouts: A is packed once per plan, `[row block of 16][k chunk of 64][16 rows][64]` per
//! plane (one tile each 1 KiB, contiguous); B per product, `[strip of 16 columns][k chunk]
//! [16 quads][16 columns][4]` (the tiles' B layout: four consecutive k per 32-bit element).
//! Rows and k are padded with zeros. The instructions are written with `asm!` (no stable
//! intrinsics), each a whole instruction on tile registers the compiler never uses.
//!
//! Linux only: a process must ask the kernel for the tile state once
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); without AMX, without that permission, with
//! `LSTM_DSE_PORTABLE_KERNELS` or `LSTM_DSE_NO_AMX` set, [`available`] is false and the
//! products run on the AVX-512 VNNI kernels as before.

use super::intgemm::{Layout, SendPtr};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows per tile.
const TR: usize = 16;
/// Bytes of k per tile row.
const TK: usize = 64;
/// Columns per strip (one tile of 32-bit sums is 16 wide).
const NR: usize = 16;
/// k per 32-bit block (a multiple of [`TK`]).
const KB: usize = 16_384;
/// Row blocks of 16 per rayon task.
const BLOCKS_PER_TASK: usize = 4;

/// Whether the tiles can run here: a Linux x86-64 CPU with AMX-TILE and AMX-INT8, the
/// kernel's permission granted, neither `LSTM_DSE_PORTABLE_KERNELS` nor `LSTM_DSE_NO_AMX`
/// set. Decided once per process.
pub fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        if crate::cpu::portable() || std::env::var_os("LSTM_DSE_NO_AMX").is_some() {
            return false;
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
            let id = std::arch::x86_64::__cpuid_count(7, 0);
            if (id.edx >> 24) & 3 != 3 {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a plain system call with integer arguments.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            };
            r == 0
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// One operand's codes as byte planes: one signed plane when every code fits i8, else the
/// high (signed) and low (unsigned) bytes.
#[derive(Debug, Clone)]
enum Planes {
    Narrow(Vec<u8>),
    Wide { hi: Vec<u8>, lo: Vec<u8> },
}

impl Planes {
    /// Zeroed planes of `len` bytes each.
    fn of(wide: bool, len: usize) -> Planes {
        if wide {
            Planes::Wide {
                hi: vec![0; len],
                lo: vec![0; len],
            }
        } else {
            Planes::Narrow(vec![0; len])
        }
    }
}

/// The byte of `c` in plane `hi` (wide) or the code itself (narrow).
#[inline(always)]
fn byte(c: i32, wide: bool, hi: bool) -> u8 {
    match (wide, hi) {
        (false, _) => c as i8 as u8,
        (true, true) => (c >> 8) as i8 as u8,
        (true, false) => (c & 255) as u8,
    }
}

/// Row block `rb` of `codes` (`rows x k`, row-major) into its tiles' high and low bytes, row
/// by row, k in runs of [`TK`] (each run one contiguous row of a tile, so the loop
/// vectorizes); returns the block's smallest and largest code (0, 0 for none). Writes every
/// byte of the block's tiles that holds a code; the padding (rows past `rows`, k past `k`)
/// is left as it is.
#[inline(always)]
fn fill_pair(
    hi: &mut [MaybeUninit<u8>],
    lo: &mut [MaybeUninit<u8>],
    codes: &[i32],
    (rows, k): (usize, usize),
    rb: usize,
) -> (i64, i64) {
    let (mut min, mut max) = ([0i32; TK], [0i32; TK]);
    for i in 0..TR.min(rows - rb * TR) {
        let row = &codes[(rb * TR + i) * k..(rb * TR + i + 1) * k];
        for (c, run) in row.chunks(TK).enumerate() {
            let at = c * TR * TK + i * TK;
            let (h, l) = (&mut hi[at..at + run.len()], &mut lo[at..at + run.len()]);
            for (j, &v) in run.iter().enumerate() {
                h[j].write(byte(v, true, true));
                l[j].write(byte(v, true, false));
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
            }
        }
    }
    let min = min.iter().fold(0, |m, &v| m.min(v));
    let max = max.iter().fold(0, |m, &v| m.max(v));
    (min as i64, max as i64)
}

/// [`fill_pair`] compiled for AVX-512 (plain x86-64 has no 32-bit integer minimum).
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fill_pair_avx512(
    hi: &mut [MaybeUninit<u8>],
    lo: &mut [MaybeUninit<u8>],
    codes: &[i32],
    shape: (usize, usize),
    rb: usize,
) -> (i64, i64) {
    fill_pair(hi, lo, codes, shape, rb)
}

/// A `rows x k` matrix of codes that fit i16, packed in tiles.
#[derive(Debug, Clone)]
pub struct PackedAmx {
    pub rows: usize,
    pub k: usize,
    /// k chunks of [`TK`].
    chunks: usize,
    planes: Planes,
}

impl PackedAmx {
    /// Packs row-major `codes`; `None` when a code does not fit i16.
    pub fn new(codes: &[i32], rows: usize, k: usize) -> Option<Self> {
        debug_assert_eq!(codes.len(), rows * k);
        let chunks = k.div_ceil(TK);
        let tile_bytes = chunks * TR * TK;
        let len = rows.div_ceil(TR) * tile_bytes;
        // One pass over the codes: both byte planes and the codes' range. The low byte of a
        // code that fits i8 is the code itself as a signed byte, so the low plane is the
        // narrow plane when every code fits i8. Each byte is written once: zeros first only
        // where there is padding (rows or k short of a whole tile), codes over them.
        let (mut hi, mut lo) = (Vec::<u8>::with_capacity(len), Vec::<u8>::with_capacity(len));
        let (hs, ls) = (
            &mut hi.spare_capacity_mut()[..len],
            &mut lo.spare_capacity_mut()[..len],
        );
        if !rows.is_multiple_of(TR) || !k.is_multiple_of(TK) {
            hs.fill(MaybeUninit::new(0));
            ls.fill(MaybeUninit::new(0));
        }
        #[cfg(target_arch = "x86_64")]
        let wide_isa = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        let (min, max) = hs
            .par_chunks_mut(tile_bytes.max(1))
            .zip(ls.par_chunks_mut(tile_bytes.max(1)))
            .enumerate()
            .map(|(rb, (h, l))| {
                #[cfg(target_arch = "x86_64")]
                if wide_isa {
                    // SAFETY: the CPU has AVX-512F and AVX-512BW.
                    return unsafe { fill_pair_avx512(h, l, codes, (rows, k), rb) };
                }
                fill_pair(h, l, codes, (rows, k), rb)
            })
            .reduce(|| (0, 0), |a, b| (a.0.min(b.0), a.1.max(b.1)));
        // SAFETY: every byte of both planes was written above: the codes' bytes by
        // `fill_pair` (every row below `rows`, every k below `k`: with no padding that is all
        // `len`), the padding as zeros.
        unsafe {
            hi.set_len(len);
            lo.set_len(len);
        }
        if min < i16::MIN as i64 || max > i16::MAX as i64 {
            return None;
        }
        let planes = if min < -128 || max > 127 {
            Planes::Wide { hi, lo }
        } else {
            drop(hi);
            Planes::Narrow(lo)
        };
        Some(PackedAmx {
            rows,
            k,
            chunks,
            planes,
        })
    }

    /// `A[r][kk]`, read back from the planes.
    pub(super) fn at(&self, r: usize, kk: usize) -> i64 {
        let at = (r / TR) * self.chunks * TR * TK + (kk / TK) * TR * TK + (r % TR) * TK + kk % TK;
        match &self.planes {
            Planes::Narrow(p) => p[at] as i8 as i64,
            Planes::Wide { hi, lo } => 256 * (hi[at] as i8 as i64) + lo[at] as i64,
        }
    }
}

/// `out = A·B` exactly (`out`: `a.rows x ncols` in `layout`, overwritten). `b` is `a.k x
/// ncols` (stride ncols, ncols a multiple of 16) with its codes in `(min, max)` (the caller's
/// [`super::exact::range`] of `b`, computed once for every variant); `None` (and `out`
/// untouched) when they do not fit i16. Needs [`available`].
pub fn product(
    a: &PackedAmx,
    b: &[i32],
    ncols: usize,
    b_range: (i64, i64),
    out: &mut [i64],
    layout: Layout,
) -> Option<()> {
    // SAFETY: `product_uninit` writes only initialised values (the sums) into `out`.
    let out = unsafe { &mut *(out as *mut [i64] as *mut [MaybeUninit<i64>]) };
    product_uninit(a, b, ncols, b_range, out, layout)
}

/// [`product`] into memory that need not be initialised: when it returns `Some`, every one of
/// the first `a.rows * ncols` elements of `out` has been written.
pub fn product_uninit(
    a: &PackedAmx,
    b: &[i32],
    ncols: usize,
    (min, max): (i64, i64),
    out: &mut [MaybeUninit<i64>],
    layout: Layout,
) -> Option<()> {
    assert!(available() && ncols.is_multiple_of(NR));
    assert!(b.len() >= a.k * ncols && out.len() >= a.rows * ncols);
    debug_assert_eq!(super::exact::range(b), (min, max));
    if min < i16::MIN as i64 || max > i16::MAX as i64 {
        return None;
    }
    if a.rows == 0 || ncols == 0 {
        return Some(());
    }
    // B in tiles: [strip][chunk][quad][column][4].
    let wide = min < -128 || max > 127;
    let strips = ncols / NR;
    let strip_bytes = a.chunks * TR * TK;
    let mut bp = Planes::of(wide, strips * strip_bytes);
    let fill = |dst: &mut [u8], hi: bool| {
        dst.par_chunks_mut(strip_bytes.max(1))
            .enumerate()
            .for_each(|(s, strip)| {
                for kk in 0..a.k {
                    let row = &b[kk * ncols + s * NR..kk * ncols + (s + 1) * NR];
                    let at = (kk / 4) * NR * 4 + kk % 4;
                    for (j, &c) in row.iter().enumerate() {
                        strip[at + j * 4] = byte(c, wide, hi);
                    }
                }
            })
    };
    match &mut bp {
        Planes::Narrow(p) => fill(p, true),
        Planes::Wide { hi, lo } => {
            fill(hi, true);
            fill(lo, false);
        }
    }
    let (c_strip, c_row) = match layout {
        Layout::RowMajor => (NR, ncols),
        Layout::StripMajor => (a.rows * NR, NR),
    };
    let base = SendPtr(out.as_mut_ptr().cast::<i64>());
    let blocks = a.rows.div_ceil(TR);
    let tasks = blocks.div_ceil(BLOCKS_PER_TASK);
    let body = |task: usize| {
        let b0 = task * BLOCKS_PER_TASK;
        let b1 = (b0 + BLOCKS_PER_TASK).min(blocks);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available()` checked the CPU and the permission. Task `task` writes only
        // rows `b0*16 .. min(b1*16, a.rows)` of `out` (of every strip), all inside `out`'s
        // `a.rows * ncols` elements; no two tasks share a row.
        unsafe {
            tiles::task(&tiles::Task {
                a,
                b: &bp,
                blocks: b0..b1,
                strips,
                strip_bytes,
                out: base.get(),
                c_strip,
                c_row,
            });
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (b0, b1, &base, &bp, c_strip, c_row, strip_bytes);
    };
    let work = a.rows * ncols * a.k;
    if work < super::gemm::SERIAL_WORK as usize {
        (0..tasks).for_each(body);
    } else {
        (0..tasks).into_par_iter().for_each(body);
    }
    Some(())
}

#[cfg(target_arch = "x86_64")]
mod tiles {
    use super::{PackedAmx, Planes, KB, NR, TK, TR};
    use std::arch::asm;

    /// One task: row blocks `blocks` of A against every strip of B.
    pub(super) struct Task<'a> {
        pub a: &'a PackedAmx,
        pub b: &'a Planes,
        pub blocks: std::ops::Range<usize>,
        pub strips: usize,
        pub strip_bytes: usize,
        /// Element (row r, column j) of the result at `(j / 16) * c_strip + r * c_row + j % 16`.
        pub out: *mut i64,
        pub c_strip: usize,
        pub c_row: usize,
    }

    /// The tile configuration: palette 1, tiles 0..8 each 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    impl Config {
        fn full() -> Config {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                c[16 + 2 * t] = TK as u8;
                c[48 + t] = TR as u8;
            }
            Config(c)
        }
    }

    macro_rules! load {
        ($tmm:literal, $p:expr) => {
            asm!(concat!("tileloadd ", $tmm, ", [{p} + {s}*1]"), p = in(reg) $p, s = in(reg) TK,
                 options(nostack, readonly))
        };
    }
    macro_rules! dp {
        ($op:literal, $c:literal, $a:literal, $b:literal) => {
            asm!(
                concat!($op, " ", $c, ", ", $a, ", ", $b),
                options(nostack, nomem)
            )
        };
    }
    macro_rules! store {
        ($tmm:literal, $p:expr) => {
            asm!(concat!("tilestored [{p} + {s}*1], ", $tmm), p = in(reg) $p, s = in(reg) 64usize,
                 options(nostack))
        };
    }

    /// Runs a task (tmm0..2: the sums at shifts 0, 8 and 16; tmm3, tmm4: A's planes; tmm5,
    /// tmm6: B's).
    ///
    /// # Safety
    /// AMX-TILE and AMX-INT8 available and permitted; `out` valid for the task's rows.
    pub(super) unsafe fn task(t: &Task<'_>) {
        let cfg = Config::full();
        asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        let a = t.a;
        let tile_bytes = a.chunks * TR * TK;
        let (a_hi, a_lo) = match &a.planes {
            Planes::Narrow(p) => (p.as_ptr(), None),
            Planes::Wide { hi, lo } => (hi.as_ptr(), Some(lo.as_ptr())),
        };
        let (b_hi, b_lo) = match t.b {
            Planes::Narrow(p) => (p.as_ptr(), None),
            Planes::Wide { hi, lo } => (hi.as_ptr(), Some(lo.as_ptr())),
        };
        let mut sums = [[0i32; NR * TR]; 3];
        for rb in t.blocks.clone() {
            let rows = TR.min(a.rows - rb * TR);
            for s in 0..t.strips {
                let mut c0 = 0;
                while c0 < a.chunks {
                    let c1 = (c0 + KB / TK).min(a.chunks);
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        options(nostack, nomem)
                    );
                    for ch in c0..c1 {
                        let at_a = rb * tile_bytes + ch * TR * TK;
                        let at_b = s * t.strip_bytes + ch * TR * TK;
                        load!("tmm3", a_hi.add(at_a));
                        load!("tmm5", b_hi.add(at_b));
                        match (a_lo, b_lo) {
                            (None, None) => dp!("tdpbssd", "tmm0", "tmm3", "tmm5"),
                            (None, Some(bl)) => {
                                load!("tmm6", bl.add(at_b));
                                dp!("tdpbssd", "tmm1", "tmm3", "tmm5");
                                dp!("tdpbsud", "tmm0", "tmm3", "tmm6");
                            }
                            (Some(al), None) => {
                                load!("tmm4", al.add(at_a));
                                dp!("tdpbssd", "tmm1", "tmm3", "tmm5");
                                dp!("tdpbusd", "tmm0", "tmm4", "tmm5");
                            }
                            (Some(al), Some(bl)) => {
                                load!("tmm4", al.add(at_a));
                                load!("tmm6", bl.add(at_b));
                                dp!("tdpbssd", "tmm2", "tmm3", "tmm5");
                                dp!("tdpbsud", "tmm1", "tmm3", "tmm6");
                                dp!("tdpbusd", "tmm1", "tmm4", "tmm5");
                                dp!("tdpbuud", "tmm0", "tmm4", "tmm6");
                            }
                        }
                    }
                    store!("tmm0", sums[0].as_mut_ptr());
                    store!("tmm1", sums[1].as_mut_ptr());
                    store!("tmm2", sums[2].as_mut_ptr());
                    // Widened into i64: written at the first block, added after.
                    let first = c0 == 0;
                    for r in 0..rows {
                        let dst = t.out.add(s * t.c_strip + (rb * TR + r) * t.c_row);
                        for j in 0..NR {
                            let e = r * NR + j;
                            let v = sums[0][e] as i64
                                + 256 * sums[1][e] as i64
                                + 65536 * sums[2][e] as i64;
                            let d = dst.add(j);
                            *d = if first { v } else { *d + v };
                        }
                    }
                    c0 = c1;
                }
                if a.chunks == 0 {
                    for r in 0..rows {
                        let dst = t.out.add(s * t.c_strip + (rb * TR + r) * t.c_row);
                        std::ptr::write_bytes(dst, 0, NR);
                    }
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}

#[cfg(test)]
#[path = "amx_tests.rs"]
mod tests;
