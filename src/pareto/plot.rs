//! SVG plot of a front over two columns: every row faint, the front strong and joined in
//! x order. Text stays SVG `<text>` (no font files needed), and equal input gives equal bytes.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::Path;

use plotters::prelude::*;

use super::ParetoError;

/// Dominated points beyond this many are thinned by a fixed stride: an SVG of millions of
/// circles helps nobody, and the front itself is always drawn whole.
const MAX_FAINT_POINTS: usize = 50_000;

const FAINT: RGBColor = RGBColor(200, 200, 200);
const STRONG: RGBColor = RGBColor(200, 40, 30);

/// Draws the points `(x.1[i], y.1[i])` to the SVG file `path`: points with `on_front[i]` in a
/// strong colour (joined by a line in x order when they form a staircase in this projection),
/// the others small and light grey, with `x.0` and
/// `y.0` as axis labels. Non-finite points are left out. Written atomically.
pub fn plot_front_svg(
    path: &Path,
    title: &str,
    x: (&str, &[f64]),
    y: (&str, &[f64]),
    on_front: &[bool],
) -> Result<(), ParetoError> {
    let svg = front_svg(path, title, x, y, on_front)?;
    // Whole or not at all, the temporary file removed on error (crate::report::write_atomic).
    crate::report::write_atomic(path, |w| w.write_all(svg.as_bytes())).map_err(|source| {
        ParetoError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The text of [`plot_front_svg`] (`path` only names the file in errors), for a caller that
/// writes it with other files.
pub fn front_svg(
    path: &Path,
    title: &str,
    x: (&str, &[f64]),
    y: (&str, &[f64]),
    on_front: &[bool],
) -> Result<String, ParetoError> {
    let fail = |message: String| ParetoError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let (xs, ys) = (x.1, y.1);
    if xs.len() != ys.len() || xs.len() != on_front.len() {
        return Err(fail(format!(
            "{} x values, {} y values and {} front flags",
            xs.len(),
            ys.len(),
            on_front.len()
        )));
    }
    render(title, x, y, on_front, true).map_err(fail)
}

/// The SVG text of [`plot_front_svg`]. Plotters spends microseconds on each circle, so with
/// `fast` the dominated points (up to [`MAX_FAINT_POINTS`] of them) are written here, each
/// as plotters writes the first of them, at the pixel plotters maps it to; any doubt (the
/// first circle not where it is expected) falls back to plotters drawing every one.
fn render(
    title: &str,
    x: (&str, &[f64]),
    y: (&str, &[f64]),
    on_front: &[bool],
    fast: bool,
) -> Result<String, String> {
    let (xs, ys) = (x.1, y.1);
    let finite = || (0..xs.len()).filter(|&i| xs[i].is_finite() && ys[i].is_finite());
    let x_range = padded_range(finite().map(|i| xs[i]));
    let y_range = padded_range(finite().map(|i| ys[i]));

    let mut front: Vec<(f64, f64)> = finite()
        .filter(|&i| on_front[i])
        .map(|i| (xs[i], ys[i]))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let faint_all = || finite().filter(|&i| !on_front[i]);
    let stride = faint_all().count().div_ceil(MAX_FAINT_POINTS).max(1);
    let faint: Vec<(f64, f64)> = faint_all()
        .step_by(stride)
        .map(|i| (xs[i], ys[i]))
        .collect();

    let mut svg = String::new();
    // The faint points plotters draws, and where they land (for the fast path).
    let drawn = if fast {
        faint.len().min(1)
    } else {
        faint.len()
    };
    let mut pixels = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 640)).into_drawing_area();
        let draw = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range, y_range)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc(x.0)
            .y_desc(y.0)
            .axis_desc_style(("sans-serif", 17))
            .label_style(("sans-serif", 14))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(|e| draw(&e))?;
        if fast {
            // As plotters places a circle: the mapped point clamped to the plotting area.
            let (xr, yr) = chart.plotting_area().get_pixel_range();
            pixels = faint
                .iter()
                .map(|p| {
                    let (px, py) = chart.backend_coord(p);
                    (px.min(xr.end).max(xr.start), py.min(yr.end).max(yr.start))
                })
                .collect();
        }
        chart
            .draw_series(
                faint[..drawn]
                    .iter()
                    .map(|&p| Circle::new(p, 2, FAINT.filled())),
            )
            .map_err(|e| draw(&e))?
            .label("dominated")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, FAINT.filled()));
        // A staircase only when the front is one in this projection: with more than two
        // objectives, front points need not be monotone in the first two, and a line through
        // them would suggest a trade-off curve that is not there.
        let monotone = front.windows(2).all(|w| w[1].1 <= w[0].1)
            || front.windows(2).all(|w| w[1].1 >= w[0].1);
        if monotone {
            chart
                .draw_series(LineSeries::new(
                    front.iter().copied(),
                    STRONG.stroke_width(2),
                ))
                .map_err(|e| draw(&e))?;
        }
        chart
            .draw_series(front.iter().map(|&p| Circle::new(p, 4, STRONG.filled())))
            .map_err(|e| draw(&e))?
            .label("front")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, STRONG.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    if drawn == faint.len() {
        return Ok(svg);
    }
    // The first faint circle is the first circle of the page; the rest follow it.
    let first = |(px, py): (i32, i32)| format!("<circle cx=\"{px}\" cy=\"{py}\" ");
    let lead = first(pixels[0]);
    let Some(at) = svg
        .find("<circle ")
        .filter(|&at| svg[at..].starts_with(&lead))
    else {
        return render(title, x, y, on_front, false);
    };
    let Some(len) = svg[at..].find("/>\n").map(|n| n + 3) else {
        return render(title, x, y, on_front, false);
    };
    let rest = &svg[at + lead.len()..at + len];
    // The page with the circles in place of the first one, copied piece by piece
    // (`String::replace_range` splices byte by byte: ~10 ms for a 4.6 MB page).
    let mut page = String::with_capacity(svg.len() + (len + 8) * pixels.len());
    page.push_str(&svg[..at]);
    for &p in &pixels {
        let mut b = itoa::Buffer::new();
        page.push_str("<circle cx=\"");
        page.push_str(b.format(p.0));
        page.push_str("\" cy=\"");
        page.push_str(b.format(p.1));
        page.push_str("\" ");
        page.push_str(rest);
    }
    page.push_str(&svg[at + len..]);
    Ok(page)
}

/// The span of the finite `values` with 5% margins (`crate::view::svg::padded_span`: finite
/// and not empty for any finite data; plotters' tick loop never ends on an infinite span).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    match lo.partial_cmp(&hi) {
        Some(Ordering::Less | Ordering::Equal) => {
            let (lo, hi) = crate::view::svg::padded_span(lo, hi);
            lo..hi
        }
        _ => 0.0..1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_labels_points_and_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xs = [1.0, 2.0, 3.0, 2.5, 4.0, f64::INFINITY];
        let ys = [5.0, 3.0, 1.0, 4.0, 4.5, 0.0];
        let front = [true, true, true, false, false, false];
        let a = dir.path().join("a.svg");
        let b = dir.path().join("nested/b.svg");
        for p in [&a, &b] {
            plot_front_svg(p, "Front", ("latency_us", &xs), ("energy_uj", &ys), &front)
                .expect("plot");
        }
        let svg = std::fs::read_to_string(&a).expect("read");
        assert_eq!(svg, std::fs::read_to_string(&b).expect("read"));
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        // The backend puts each label on a line of its own inside <text>.
        for label in ["latency_us", "energy_uj", "Front", "front", "dominated"] {
            assert!(
                svg.contains(&format!(">\n{label}\n</text>")),
                "missing {label}"
            );
        }
        assert!(svg.contains("<polyline"));
        assert!(svg.matches("<circle").count() >= 5);
        assert!(!crate::report::partial_path(&a).exists());
    }

    #[test]
    fn degenerate_inputs_still_plot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("p.svg");
        plot_front_svg(&p, "empty", ("x", &[]), ("y", &[]), &[]).expect("empty plot");
        plot_front_svg(&p, "one", ("x", &[0.0]), ("y", &[2.0]), &[true]).expect("single");
        let e = plot_front_svg(&p, "bad", ("x", &[0.0]), ("y", &[]), &[true]).expect_err("len");
        assert!(e.to_string().contains("1 x values, 0 y values"));
    }

    proptest::proptest! {
        /// The fast path's page is the page plotters draws circle by circle (the oracle), on
        /// random points with non-finite values, repeats, thinning and any front.
        #[test]
        fn fast_faint_points_draw_like_plotters(
            points in proptest::collection::vec((0u8..40, -3i32..50, proptest::bool::ANY), 0..120),
            spread in 1e-3f64..1e6,
            max in 1usize..4,
        ) {
            let xs: Vec<f64> = points.iter().map(|p| match p.0 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                v => f64::from(v) * spread,
            }).collect();
            let ys: Vec<f64> = points.iter().map(|p| f64::from(p.1) / 7.0).collect();
            let on: Vec<bool> = points.iter().map(|p| p.2 && p.1 % max as i32 == 0).collect();
            let fast = render("t", ("x", &xs), ("y", &ys), &on, true).unwrap();
            let slow = render("t", ("x", &xs), ("y", &ys), &on, false).unwrap();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn range_padding() {
        assert_eq!(padded_range([0.0, 10.0].into_iter()), -0.5..10.5);
        assert_eq!(padded_range([2.0].into_iter()), 1.9..2.1);
        assert_eq!(padded_range(std::iter::empty()), 0.0..1.0);
    }

    /// Axes from the ends of f64 (plotters looped forever on the infinite span that 5%
    /// margins made of 0 and 1.79e308): each plot finishes, run on a thread so that a
    /// regression fails the test instead of hanging it.
    #[test]
    fn extreme_values_plot_in_finite_time() {
        let ends = [
            f64::MAX,
            -f64::MAX,
            1.79e308,
            0.0,
            5e-324,
            -5e-324,
            f64::MIN_POSITIVE,
            1e300,
            1e300 * (1.0 + f64::EPSILON),
        ];
        let mut cases = Vec::new();
        for &a in &ends {
            for &b in &ends {
                cases.push(vec![a, b]);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for xs in cases {
                let ys = [1.0, 2.0];
                let r = render("t", ("x", &xs), ("y", &ys), &[true, true], true)
                    .and_then(|_| render("t", ("x", &ys), ("y", &xs), &[true, false], false));
                if tx.send((xs, r.map(|_| ()))).is_err() {
                    return;
                }
            }
        });
        for _ in 0..ends.len() * ends.len() {
            let (xs, r) = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("a plot of extreme values did not finish within 20 s");
            assert!(r.is_ok(), "{xs:?}: {r:?}");
        }
    }
}
