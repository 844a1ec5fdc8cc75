//! The x86 microkernels of [`super`]'s exact integer product: `vpmaddwd` on AVX2 (eight
//! 32-bit pair sums per instruction) and on AVX-512BW (sixteen), and `vpdpwssd` where the CPU
//! has AVX-512 VNNI; each walks one [`super::Task`]'s `MR x NR` tiles and widens every block's
//! 32-bit sums into the 64-bit result (the exactness argument is in [`super`]).

pub(crate) mod avx2 {
    use super::super::{Task, MR, NR};
    use std::arch::x86_64::*;

    /// A task's rows on 6 x 16 tiles.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn blocked(t: &Task<'_>) {
        t.walk::<1>(|[a], b, c, rows| micro(a, b, c, t.c_row, rows));
    }

    /// One block: a 6 x 16 tile of 32-bit sums from zero, then added to the 64-bit `c`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn micro(a: &[i16], b: &[i16], c: *mut i64, ldc: usize, rows: usize) {
        debug_assert_eq!(a.len() / (MR * 2), b.len() / (NR * 2));
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        let mut ap = a.as_ptr();
        let mut bq = b.as_ptr();
        for _ in 0..a.len() / (MR * 2) {
            let b0 = _mm256_loadu_si256(bq.cast());
            let b1 = _mm256_loadu_si256(bq.add(16).cast());
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_set1_epi32(ap.add(2 * i).cast::<i32>().read_unaligned());
                row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(ai, b0));
                row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(ai, b1));
            }
            ap = ap.add(MR * 2);
            bq = bq.add(NR * 2);
        }
        for (i, row) in acc.iter().enumerate().take(rows) {
            for (h, &v) in row.iter().enumerate() {
                let dst = c.add(i * ldc + h * 8);
                let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
                let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v));
                let d0 = _mm256_loadu_si256(dst.cast());
                let d1 = _mm256_loadu_si256(dst.add(4).cast());
                _mm256_storeu_si256(dst.cast(), _mm256_add_epi64(d0, lo));
                _mm256_storeu_si256(dst.add(4).cast(), _mm256_add_epi64(d1, hi));
            }
        }
    }
}

pub(crate) mod avx512 {
    use super::super::{Task, MR, NR};
    use std::arch::x86_64::*;

    /// A task's rows on 12 x 16 tiles (two panels against one zmm of B per k pair),
    /// `vpdpwssd`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(crate) unsafe fn blocked_vnni(t: &Task<'_>) {
        t.walk::<2>(|a, b, c, rows| micro::<true>(a, b, c, t.c_row, rows));
    }

    /// The same with `vpmaddwd` then `vpaddd`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) unsafe fn blocked(t: &Task<'_>) {
        t.walk::<2>(|a, b, c, rows| micro::<false>(a, b, c, t.c_row, rows));
    }

    /// One block: a 12 x 16 tile of 32-bit sums from zero, then added to the 64-bit `c`
    /// (`rows` of them). Always inlined into a caller with the features it needs.
    #[inline(always)]
    unsafe fn micro<const VNNI: bool>(
        a: [&[i16]; 2],
        b: &[i16],
        c: *mut i64,
        ldc: usize,
        rows: usize,
    ) {
        debug_assert_eq!(a[0].len() / (MR * 2), b.len() / (NR * 2));
        let mut acc = [[_mm512_setzero_si512(); MR]; 2];
        let (mut a0, mut a1) = (a[0].as_ptr(), a[1].as_ptr());
        let mut bq = b.as_ptr();
        for _ in 0..b.len() / (NR * 2) {
            let bv = _mm512_loadu_si512(bq.cast());
            for (panel, ap) in acc.iter_mut().zip([a0, a1]) {
                for (i, acc) in panel.iter_mut().enumerate() {
                    let ai = _mm512_set1_epi32(ap.add(2 * i).cast::<i32>().read_unaligned());
                    *acc = if VNNI {
                        _mm512_dpwssd_epi32(*acc, ai, bv)
                    } else {
                        _mm512_add_epi32(*acc, _mm512_madd_epi16(ai, bv))
                    };
                }
            }
            a0 = a0.add(MR * 2);
            a1 = a1.add(MR * 2);
            bq = bq.add(NR * 2);
        }
        widen_add(&acc, c, ldc, rows);
    }

    /// Adds a tile's 32-bit block sums (`P` panels of `MR` rows of 16 lanes), widened to i64,
    /// to the first `rows` rows of `c` (stride `ldc`). Shared with [`super::super::intgemm8`].
    #[inline(always)]
    pub(in crate::lstm::eval) unsafe fn widen_add<const P: usize>(
        acc: &[[__m512i; MR]; P],
        c: *mut i64,
        ldc: usize,
        rows: usize,
    ) {
        for r in 0..rows {
            let v = acc[r / MR][r % MR];
            let dst = c.add(r * ldc);
            let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
            let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v));
            let d0 = _mm512_loadu_si512(dst.cast());
            let d1 = _mm512_loadu_si512(dst.add(8).cast());
            _mm512_storeu_si512(dst.cast(), _mm512_add_epi64(d0, lo));
            _mm512_storeu_si512(dst.add(8).cast(), _mm512_add_epi64(d1, hi));
        }
    }
}
