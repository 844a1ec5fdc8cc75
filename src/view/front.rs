//! The Pareto-front figure: a scatter of the front over two objectives, coloured by a third
//! and sized by a fourth, over the dominated points drawn faint, built on the axes and scales
//! of [`super::svg`].

use super::svg::*;
use std::fmt::Write;

/// A scatter of the front over two objectives, coloured by a third and sized by a fourth
/// (each optional), over faint background points. `tips[i]` describes front point i.
pub struct FrontFigure<'a> {
    pub title: &'a str,
    pub x: (&'a str, &'a [f64]),
    pub y: (&'a str, &'a [f64]),
    pub colour: Option<(&'a str, &'a [f64])>,
    pub size: Option<(&'a str, &'a [f64])>,
    pub tips: &'a [String],
    /// Dominated (or all) points drawn faint behind the front: (x, y).
    pub background: &'a [(f64, f64)],
}

fn span(v: &[f64]) -> (f64, f64) {
    v.iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

fn unit(v: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo {
        (v - lo) / (hi - lo)
    } else {
        0.5
    }
}

impl FrontFigure<'_> {
    /// The figure as an `<svg>` element of `width` x `height` pixels.
    pub fn render(&self, width: f64, height: f64) -> String {
        let mut xs: Vec<f64> = self.x.1.to_vec();
        let mut ys: Vec<f64> = self.y.1.to_vec();
        xs.extend(self.background.iter().map(|p| p.0));
        ys.extend(self.background.iter().map(|p| p.1));
        let legend_w = if self.colour.is_some() || self.size.is_some() {
            170.0
        } else {
            0.0
        };
        let mut c = Chart::new(
            width - legend_w,
            height,
            self.title,
            (self.x.0, &xs, false),
            (self.y.0, &ys, false),
        );
        for &(x, y) in self.background {
            c.point(x, y, 1.8, FAINT, "dominated");
        }
        let cspan = self.colour.map(|(_, v)| span(v));
        let sspan = self.size.map(|(_, v)| span(v));
        // Big points first, so small ones stay visible on top.
        let mut order: Vec<usize> = (0..self.x.1.len()).collect();
        let radius = |i: usize| match (self.size, sspan) {
            (Some((_, v)), Some(s)) => 3.0 + 9.0 * unit(v[i], s),
            _ => 4.5,
        };
        order.sort_by(|&a, &b| radius(b).total_cmp(&radius(a)).then(a.cmp(&b)));
        for i in order {
            let fill = match (self.colour, cspan) {
                (Some((_, v)), Some(s)) => sequential(unit(v[i], s)),
                _ => STRONG.to_string(),
            };
            let tip = self.tips.get(i).cloned().unwrap_or_default();
            c.point(self.x.1[i], self.y.1[i], radius(i), &fill, &tip);
        }
        let mut svg = c.finish();
        if legend_w > 0.0 {
            svg = self.with_legend(svg, width, height, legend_w, cspan, sspan);
        }
        svg
    }

    /// Puts the colour bar and the size key to the right of the chart.
    fn with_legend(
        &self,
        chart: String,
        width: f64,
        height: f64,
        legend_w: f64,
        cspan: Option<(f64, f64)>,
        sspan: Option<(f64, f64)>,
    ) -> String {
        let x0 = width - legend_w + 10.0;
        let mut s = String::new();
        if let (Some((name, _)), Some((lo, hi))) = (self.colour, cspan) {
            let _ = write!(
                s,
                r##"<text x="{x0}" y="40" font-size="12">colour: {}</text>"##,
                esc(name)
            );
            for k in 0..20 {
                let _ = write!(
                    s,
                    r##"<rect x="{x0}" y="{}" width="16" height="6" fill="{}"/>"##,
                    170 - k * 6,
                    sequential(k as f64 / 19.0)
                );
            }
            let _ = write!(
                s,
                r##"<text x="{}" y="60" font-size="11">{}</text><text x="{}" y="176" font-size="11">{}</text>"##,
                x0 + 22.0,
                num(hi),
                x0 + 22.0,
                num(lo)
            );
        }
        if let (Some((name, _)), Some((lo, hi))) = (self.size, sspan) {
            let _ = write!(
                s,
                r##"<text x="{x0}" y="215" font-size="12">size: {}</text>"##,
                esc(name)
            );
            for (k, v) in [lo, (lo + hi) / 2.0, hi].iter().enumerate() {
                let r = 3.0 + 9.0 * unit(*v, (lo, hi));
                let y = 240.0 + k as f64 * 28.0;
                let _ = write!(
                    s,
                    r##"<circle cx="{}" cy="{y}" r="{r:.1}" fill="#999"/><text x="{}" y="{:.1}" font-size="11">{}</text>"##,
                    x0 + 10.0,
                    x0 + 28.0,
                    y + 4.0,
                    num(*v)
                );
            }
        }
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">{chart}{s}</svg>"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_figure_has_a_point_per_row_and_is_deterministic() {
        let x = [1.0, 2.0, 3.0];
        let y = [3.0, 2.0, 1.0];
        let c = [0.1, 0.5, 0.9];
        let tips: Vec<String> = ["a<1>", "b", "c"].map(String::from).to_vec();
        let f = FrontFigure {
            title: "t",
            x: ("x", &x),
            y: ("y", &y),
            colour: Some(("c", &c)),
            size: Some(("s", &c)),
            tips: &tips,
            background: &[(2.5, 2.5)],
        };
        let svg = f.render(700.0, 400.0);
        assert_eq!(svg, f.render(700.0, 400.0));
        // 3 front points, 1 background point, 3 size-key circles.
        assert_eq!(svg.matches("<circle").count(), 7);
        assert!(svg.contains("a&lt;1&gt;"));
        assert!(svg.contains("colour: c") && svg.contains("size: s"));
    }
}
