//! Small hand-written SVG figures: axes with ticks, scatter points, lines and step bands. Plain
//! SVG 1.1 with `<title>` tooltips, no script and no fonts to load, so a figure renders inline
//! in an HTML page opened from disk, and equal input gives equal bytes.

use std::fmt::Write;

/// Categorical colours (Tableau 10), for lines and levels.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Front points and faint background points.
pub const STRONG: &str = "#c8281e";
pub const FAINT: &str = "#c8c8c8";

/// A sequential colour for `t` in 0..=1 (viridis, linearly between five stops).
pub fn sequential(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// Escapes text for SVG/HTML content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number for an axis tick or a tooltip.
pub fn num(v: f64) -> String {
    super::format_sig(v)
}

/// The axis span of data from `lo` to `hi` (finite, `lo <= hi`) with a 5% margin each side;
/// one value (or values a few ulps apart) gets 5% of itself each side (1 around 0). Finite,
/// with `hi - lo` finite and positive, for any finite data: margins stop at ±f64::MAX, a span
/// that would pass f64::MAX (data from near -MAX to near +MAX) is the widest finite one about
/// the data's middle, and subnormal data gets at least the smallest normal number each side.
/// Shared by the report's figures and `pareto --plot`, whose tick loops assume all this.
pub fn padded_span(lo: f64, hi: f64) -> (f64, f64) {
    // Ordinary data: the plain sums (the figures' bytes as they always were).
    let pad = (hi - lo) * 0.05;
    let (a, b) = (lo - pad, hi + pad);
    let wide = hi - lo > (lo / 2.0 + hi / 2.0).abs() * (4.0 * f64::EPSILON);
    if wide && (b - a).is_finite() && b - a >= 2.0 * f64::MIN_POSITIVE {
        return (a, b);
    }
    // Middle and half-width in halves: `hi - lo` overflows for data spanning over f64::MAX.
    let mid = lo / 2.0 + hi / 2.0;
    let half = hi / 2.0 - lo / 2.0;
    let padded = if half <= mid.abs() * (4.0 * f64::EPSILON) {
        if mid == 0.0 {
            1.0
        } else {
            mid.abs() * 0.05
        }
    } else {
        half * 1.1
    };
    let ends = |h: f64| ((mid - h).max(-f64::MAX), (mid + h).min(f64::MAX));
    // Margins cut at ±f64::MAX; then, for data spanning about f64::MAX, no margins; then, for
    // data wider still, the widest span whose width does not round past f64::MAX.
    for h in [padded, half.min(f64::MAX / 2.0), f64::MAX * 0.499] {
        let (a, b) = ends(h.max(f64::MIN_POSITIVE));
        if (b - a).is_finite() {
            return (a, b);
        }
    }
    ends(f64::MAX * 0.499)
}

/// A linear or logarithmic mapping of data values onto pixels.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    lo: f64,
    hi: f64,
    px0: f64,
    px1: f64,
    log: bool,
}

impl Scale {
    /// Spans the finite `values` (positive ones only when `log`) with a 5% margin.
    pub fn fit(values: &[f64], px0: f64, px1: f64, log: bool) -> Scale {
        let t = |v: f64| if log { v.log10() } else { v };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in values {
            if v.is_finite() && (!log || v > 0.0) {
                lo = lo.min(t(v));
                hi = hi.max(t(v));
            }
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        } else {
            (lo, hi) = padded_span(lo, hi);
        }
        if log {
            // Margins past the ends of f64 would give ticks of 0 or inf.
            lo = lo.max(5e-324f64.log10());
            hi = hi.min(f64::MAX.log10());
        }
        Scale {
            lo,
            hi,
            px0,
            px1,
            log,
        }
    }

    /// The pixel of a value (None when it cannot be placed: NaN, or not positive on a log
    /// scale).
    pub fn px(&self, v: f64) -> Option<f64> {
        let v = if self.log {
            if v <= 0.0 {
                return None;
            }
            v.log10()
        } else {
            v
        };
        // In halves: `v - lo` overflows for values across most of the f64 range (scaling by
        // 2 is exact, so the ratio is the one of the whole numbers). A value outside the
        // span (data wider than f64::MAX, see `padded_span`) stays near the frame.
        let f = (v / 2.0 - self.lo / 2.0) / (self.hi / 2.0 - self.lo / 2.0);
        v.is_finite()
            .then(|| self.px0 + f.clamp(-1.0, 2.0) * (self.px1 - self.px0))
    }

    /// About `n` round tick values inside the span.
    pub fn ticks(&self, n: usize) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.ceil() as i32, self.hi.floor() as i32);
            if b > a {
                let step = ((b - a) as usize / n.max(1)).max(1);
                return (a..=b).step_by(step).map(|e| 10f64.powi(e)).collect();
            }
            // Within about one decade: 1, 2 and 5 times its powers of ten, else the ends.
            let inside = |v: f64| (self.lo..=self.hi).contains(&v.log10());
            let mut t: Vec<f64> = (self.lo.floor() as i32..=self.hi.ceil() as i32)
                .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
                .filter(|&v| inside(v))
                .collect();
            if t.len() < 2 {
                let pad = (self.hi - self.lo) * 0.05 / 1.1;
                t = vec![10f64.powf(self.lo + pad), 10f64.powf(self.hi - pad)];
            }
            return t;
        }
        let raw = (self.hi - self.lo) / n.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        // The round step (1, 2 or 5 times a power of ten) nearest to the raw one.
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .min_by(|a, b| (a / raw).ln().abs().total_cmp(&(b / raw).ln().abs()))
            .unwrap_or(mag);
        let first = (self.lo / step).ceil() as i64;
        let last = (self.hi / step).floor() as i64;
        // A finite span of at least a few ulps gives about n ticks; anything else (a step
        // that did not come out finite and positive) gets the two ends, never a long loop.
        let count = (last as i128 - first as i128).saturating_add(1);
        let few = (1..=4 * n.max(1) as i128 + 4).contains(&count);
        if !(step > 0.0 && step.is_finite() && few) {
            return vec![self.lo, self.hi];
        }
        (first..=last).map(|k| k as f64 * step).collect()
    }
}

/// One chart: a plotting area with axes, built up with marks and closed with [`Chart::finish`].
pub struct Chart {
    width: f64,
    height: f64,
    /// Pixels right of the plotting area.
    right: f64,
    pub x: Scale,
    pub y: Scale,
    body: String,
}

/// Space around the plotting area, in pixels: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (64.0, 16.0, 28.0, 44.0);

impl Chart {
    /// A chart of `width` x `height` pixels whose axes span `xs` and `ys`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        width: f64,
        height: f64,
        title: &str,
        x: (&str, &[f64], bool),
        y: (&str, &[f64], bool),
    ) -> Chart {
        Chart::with_legend_column(width, height, 0.0, title, x, y)
    }

    /// A chart whose rightmost `legend_w` pixels hold the legend, outside the plotting area.
    pub fn with_legend_column(
        width: f64,
        height: f64,
        legend_w: f64,
        title: &str,
        (x_label, xs, x_log): (&str, &[f64], bool),
        (y_label, ys, y_log): (&str, &[f64], bool),
    ) -> Chart {
        let (l, _, t, b) = MARGIN;
        let r = MARGIN.1 + legend_w;
        let x = Scale::fit(xs, l, width - r, x_log);
        let y = Scale::fit(ys, height - b, t, y_log);
        let mut c = Chart {
            width,
            height,
            right: r,
            x,
            y,
            body: String::new(),
        };
        c.axes(title, x_label, y_label);
        c
    }

    fn axes(&mut self, title: &str, x_label: &str, y_label: &str) {
        let (l, _, t, b) = MARGIN;
        let r = self.right;
        let (w, h) = (self.width, self.height);
        let s = &mut self.body;
        let _ = write!(
            s,
            r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="#fff" stroke="#888"/>"##,
            w - l - r,
            h - t - b
        );
        for v in self.x.ticks(5) {
            if let Some(px) = self.x.px(v) {
                let _ = write!(
                    s,
                    r##"<line x1="{px:.1}" y1="{t}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
                    h - b,
                    h - b + 14.0,
                    num(v)
                );
            }
        }
        for v in self.y.ticks(5) {
            if let Some(py) = self.y.px(v) {
                let _ = write!(
                    s,
                    r##"<line x1="{l}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                    w - r,
                    l - 4.0,
                    py + 4.0,
                    num(v)
                );
            }
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{}</text><text transform="translate(14,{:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text><text x="{l}" y="18" font-size="13" font-weight="bold">{}</text>"##,
            (l + w - r) / 2.0,
            h - 8.0,
            esc(x_label),
            (t + h - b) / 2.0,
            esc(y_label),
            esc(title)
        );
    }

    /// A filled circle at data `(x, y)` with a tooltip.
    pub fn point(&mut self, x: f64, y: f64, radius: f64, fill: &str, tip: &str) {
        if let (Some(px), Some(py)) = (self.x.px(x), self.y.px(y)) {
            let _ = write!(
                self.body,
                r##"<circle cx="{px:.1}" cy="{py:.1}" r="{radius:.1}" fill="{fill}" fill-opacity="0.85" stroke="#333" stroke-width="0.4"><title>{}</title></circle>"##,
                esc(tip)
            );
        }
    }

    /// A line through the placeable points, broken where a point cannot be placed.
    pub fn line(&mut self, points: &[(f64, f64)], stroke: &str, dashed: bool) {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in points {
            match (self.x.px(x), self.y.px(y)) {
                (Some(px), Some(py)) => runs.last_mut().map(|r| r.push((px, py))),
                _ => {
                    runs.push(Vec::new());
                    None
                }
            };
        }
        let dash = if dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                self.body,
                r##"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="1.6"{dash}/>"##,
                pts.join(" ")
            );
        }
    }

    /// A rectangle spanning data `x0..x1` and pixel rows `py0..py1` (bands under a chart).
    pub fn band(&mut self, x0: f64, x1: f64, py: (f64, f64), fill: &str, tip: &str) {
        if let (Some(a), Some(b)) = (self.x.px(x0), self.x.px(x1)) {
            let _ = write!(
                self.body,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"##,
                a.min(b),
                py.0,
                (b - a).abs(),
                py.1 - py.0,
                esc(tip)
            );
        }
    }

    /// A legend: one coloured swatch and label per entry, in the legend column (or the top
    /// right of the plotting area when there is none).
    pub fn legend(&mut self, entries: &[(String, String)]) {
        let t = MARGIN.2;
        let x = if self.right > MARGIN.1 + 40.0 {
            self.width - self.right + 10.0
        } else {
            self.width - self.right - 150.0
        };
        for (i, (label, colour)) in entries.iter().enumerate() {
            let y = t + 8.0 + i as f64 * 15.0;
            let _ = write!(
                self.body,
                r##"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{}" y="{:.1}" font-size="11">{}</text>"##,
                y - 9.0,
                x + 14.0,
                y,
                esc(label)
            );
        }
    }

    /// Raw SVG content added on top (for figure-specific marks).
    pub fn raw(&mut self, svg: &str) {
        self.body.push_str(svg);
    }

    /// The `<svg>` element.
    pub fn finish(self) -> String {
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif">{}</svg>"#,
            self.width, self.height, self.width, self.height, self.body
        )
    }

    /// The pixel height of the chart.
    pub fn height(&self) -> f64 {
        self.height
    }
}

/// Figures of `(svg, height)` stacked vertically in one `<svg>` of `width` pixels.
pub fn stack(parts: &[(String, f64)], width: f64) -> String {
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total}" viewBox="0 0 {width} {total}" font-family="sans-serif"><rect width="{width}" height="{total}" fill="#fff"/>"##
    );
    let mut y = 0.0;
    for (svg, h) in parts {
        let inner = svg.replacen("<svg ", &format!(r#"<svg y="{y}" "#), 1);
        s.push_str(&inner);
        y += h;
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests;
