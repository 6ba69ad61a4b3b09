//! Draws a [`Figure`] on a 1920x1080 canvas, as SVG and as PNG.
//!
//! # Layout
//! Title at the top left; the legend in a column on the right, as wide as its
//! longest entry; notes (wrapped) and the footer at the bottom; the panels
//! share what is left, side by side. Axis label areas are sized from the tick
//! labels they hold, so nothing overlaps whatever the data.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{Anchor, Axis, Dash, Figure, Fill, LegendItem, Mark, Panel, Thin};
use super::style::{self, mix, Palette, Theme, FAMILY, HEIGHT, WIDTH};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}

const MARGIN: i32 = 40;
const GAP: i32 = 24;
/// Stroke widths, pixels.
const LINE_W: u32 = 5;
const AXIS_W: u32 = 2;
const DOT_R: i32 = 8;
const CROSS: i32 = 16;
/// Legend sample (line or swatch) width.
const SAMPLE_W: i32 = 64;
/// Notes beyond this many lines are folded into a last line.
const MAX_NOTE_LINES: usize = 9;

/// Writes `dir/stem.<ext>` for each format; returns the paths written.
pub fn write(
    fig: &Figure,
    theme: Theme,
    dir: &Path,
    stem: &str,
    formats: &[Format],
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for f in formats {
        let path = dir.join(format!("{stem}.{}", f.ext()));
        let err = |e: String| anyhow!("{}: {e}", path.display());
        match f {
            Format::Svg => {
                let root = SVGBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                draw(fig, theme, &root).map_err(err)?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
            Format::Png => {
                let root = BitMapBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
                draw(fig, theme, &root).map_err(err)?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
        }
        written.push(path);
    }
    Ok(written)
}

/// The figure as one SVG document, in memory (the HTML report inlines it).
pub fn svg(fig: &Figure, theme: Theme) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(fig, theme, &root).map_err(|e| anyhow!("{}: {e}", fig.title))?;
        root.present().map_err(|e| anyhow!("{}: {e}", fig.title))?;
    }
    Ok(out)
}

fn font(px: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), style::size(px), FontStyle::Normal)
}

fn bold(px: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), style::size(px), FontStyle::Bold)
}

fn text_w<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, s: &str, f: &TextStyle) -> i32 {
    root.estimate_text_size(s, f)
        .map(|(w, _)| w as i32)
        .unwrap_or((s.chars().count() as f64 * f.font.get_size() * 0.5) as i32)
}

/// Splits `text` into lines no wider than `width` pixels, at spaces.
fn wrap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    f: &TextStyle,
    width: i32,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_w(root, &candidate, f) > width {
            lines.push(std::mem::take(&mut line));
            line = format!("  {word}");
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

type DrawResult = std::result::Result<(), String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws the whole figure on `root`.
pub fn draw<DB: DrawingBackend>(
    fig: &Figure,
    theme: Theme,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult {
    let pal = theme.palette();
    root.fill(&pal.background).map_err(s)?;
    let (w, h) = (WIDTH as i32, HEIGHT as i32);

    // Title, smaller when it would not fit.
    let mut title_px = style::TITLE_PX;
    while title_px > 36.0 && text_w(root, &fig.title, &bold(title_px).into()) > w - 2 * MARGIN {
        title_px -= 2.0;
    }
    let title_font = bold(title_px).color(&pal.foreground);
    root.draw_text(&fig.title, &title_font, (MARGIN, MARGIN - 10))
        .map_err(s)?;
    let mut top = MARGIN - 10 + (style::TITLE_PX * 1.25) as i32;
    if let Some(sub) = &fig.subtitle {
        let f = font(style::SUBTITLE_PX).color(&pal.muted);
        root.draw_text(sub, &f, (MARGIN, top)).map_err(s)?;
        top += (style::SUBTITLE_PX * 1.3) as i32;
    }
    top += GAP;

    // Footer and notes, bottom up.
    let footer_font = font(style::FOOTER_PX).color(&pal.muted);
    let footer_y = h - MARGIN / 2 - (style::FOOTER_PX * 1.2) as i32;
    root.draw_text(&fig.footer, &footer_font, (MARGIN, footer_y))
        .map_err(s)?;
    let note_font = font(style::NOTE_PX).color(&pal.foreground);
    let mut note_lines: Vec<String> = fig
        .notes
        .iter()
        .flat_map(|n| wrap(root, n, &note_font, w - 2 * MARGIN))
        .collect();
    if note_lines.len() > MAX_NOTE_LINES {
        let more = note_lines.len() - (MAX_NOTE_LINES - 1);
        note_lines.truncate(MAX_NOTE_LINES - 1);
        note_lines.push(format!("… {more} more note lines: see the run's run.json"));
    }
    let note_h = (style::NOTE_PX * 1.3) as i32;
    let notes_top = footer_y - 12 - note_h * note_lines.len() as i32;
    for (i, line) in note_lines.iter().enumerate() {
        root.draw_text(line, &note_font, (MARGIN, notes_top + i as i32 * note_h))
            .map_err(s)?;
    }
    let bottom = notes_top - GAP / 2;

    // Legend column.
    let legend_font = font(style::LEGEND_PX).color(&pal.foreground);
    let legend_text_w = fig
        .legend
        .iter()
        .map(|i| text_w(root, legend_text(i), &legend_font))
        .max()
        .unwrap_or(0);
    let legend_w = if fig.legend.is_empty() {
        0
    } else {
        (SAMPLE_W + 16 + legend_text_w).min(620)
    };
    let legend_x = w - MARGIN - legend_w;
    draw_legend(root, fig, pal, legend_x, top + 10)?;

    // Panels.
    let right = if legend_w > 0 {
        legend_x - GAP * 2
    } else {
        w - MARGIN
    };
    // Label areas first; the plots share the rest by weight.
    let n = fig.panels.len().max(1) as i32;
    let total: u32 = fig.panels.iter().map(|p| p.weight.max(1)).sum();
    let y_areas: Vec<i32> = fig.panels.iter().map(|p| y_label_area(root, p)).collect();
    let free = right - MARGIN - GAP * 2 * (n - 1) - y_areas.iter().sum::<i32>();
    let mut x0 = MARGIN;
    for (panel, y_area) in fig.panels.iter().zip(y_areas) {
        let pw = y_area + free * panel.weight.max(1) as i32 / total.max(1) as i32;
        let area = root.clone().shrink(
            (x0, top),
            (pw.max(10) as u32, (bottom - top).max(10) as u32),
        );
        draw_panel(&area, panel, y_area, pal)?;
        x0 += pw + GAP * 2;
    }
    Ok(())
}

fn legend_text(i: &LegendItem) -> &str {
    match i {
        LegendItem::Target { name, .. } => name,
        LegendItem::Line { text, .. }
        | LegendItem::Swatch { text, .. }
        | LegendItem::Failure { text } => text,
    }
}

fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    pal: Palette,
    x: i32,
    y: i32,
) -> DrawResult {
    let row = (style::LEGEND_PX * 1.55) as i32;
    let f = font(style::LEGEND_PX).color(&pal.foreground);
    let mut y = y;
    let mut previous_was_target = false;
    for item in &fig.legend {
        let is_target = matches!(item, LegendItem::Target { .. });
        if previous_was_target && !is_target {
            y += row / 3;
        }
        previous_was_target = is_target;
        let cy = y + row / 2;
        let (sx0, sx1) = (x, x + SAMPLE_W);
        match item {
            LegendItem::Target { color, line, .. } => {
                if *line {
                    root.draw(&PathElement::new(
                        vec![(sx0, cy), (sx1, cy)],
                        color.stroke_width(LINE_W + 1),
                    ))
                    .map_err(s)?;
                    root.draw(&Circle::new(((sx0 + sx1) / 2, cy), DOT_R, color.filled()))
                        .map_err(s)?;
                } else {
                    root.draw(&Rectangle::new(
                        [(sx0 + 8, cy - 16), (sx1 - 8, cy + 16)],
                        color.filled(),
                    ))
                    .map_err(s)?;
                }
            }
            LegendItem::Line { dash, .. } => {
                draw_path(root, &[(sx0, cy), (sx1, cy)], pal.foreground, *dash)?;
            }
            LegendItem::Swatch { fill, .. } => {
                draw_rect(
                    root,
                    (sx0 + 8, cy - 16),
                    (sx1 - 8, cy + 16),
                    pal.foreground,
                    *fill,
                    pal,
                )?;
            }
            LegendItem::Failure { .. } => {
                draw_cross(root, ((sx0 + sx1) / 2, cy), pal.foreground, pal)?;
            }
        }
        root.draw(&Text::new(
            legend_text(item).to_string(),
            (sx1 + 16, cy),
            f.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(s)?;
        y += row;
    }
    Ok(())
}

/// A polyline in pixel coordinates on `area`.
/// Half the width of an error bar's cap, pixels.
const RANGE_CAP: i32 = 9;

fn draw_path<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: &[(i32, i32)],
    color: RGBColor,
    dash: Dash,
) -> DrawResult {
    let st = color.stroke_width(LINE_W);
    match dash {
        Dash::Solid => area.draw(&PathElement::new(pts.to_vec(), st)).map_err(s),
        Dash::Dashed => area
            .draw(&DashedPathElement::new(pts.iter().copied(), 18, 12, st))
            .map_err(s),
    }
}

fn draw_rect<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    color: RGBColor,
    fill: Fill,
    pal: Palette,
) -> DrawResult {
    match fill {
        Fill::Solid => area
            .draw(&Rectangle::new([a, b], color.filled()))
            .map_err(s),
        Fill::Pale(amount) => {
            area.draw(&Rectangle::new(
                [a, b],
                mix(color, pal.background, amount).filled(),
            ))
            .map_err(s)?;
            area.draw(&Rectangle::new([a, b], color.stroke_width(3)))
                .map_err(s)
        }
    }
}

fn draw_cross<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    color: RGBColor,
    pal: Palette,
) -> DrawResult {
    area.draw(&Cross::new(c, CROSS + 2, pal.background.stroke_width(13)))
        .map_err(s)?;
    area.draw(&Cross::new(c, CROSS, color.stroke_width(7)))
        .map_err(s)
}

/// Width of a panel's y label area: its widest tick label and its axis label.
fn y_label_area<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, panel: &Panel) -> i32 {
    let tick_font: TextStyle = font(style::TICK_PX).into();
    let widest = panel
        .y
        .ticks
        .iter()
        .map(|t| text_w(root, &t.1, &tick_font))
        .max()
        .unwrap_or(0);
    widest
        + 20
        + if panel.y.label.is_empty() {
            0
        } else {
            (style::AXIS_PX * 1.6) as i32
        }
}

/// Every k-th tick, for the smallest k at which no two labels overlap, when
/// `len` pixels of axis show `lo..hi`; `size` is a label's extent along the axis.
fn thin(axis: &Axis, len: i32, size: impl Fn(&str) -> i32) -> Axis {
    let span = (axis.hi - axis.lo).abs().max(f64::MIN_POSITIVE);
    let at = |v: f64| (v - axis.lo) / span * len as f64;
    let mut ticks = axis.ticks.clone();
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fits = |kept: &[(f64, String)]| {
        kept.windows(2).all(|w| {
            let gap = at(w[1].0) - at(w[0].0);
            w[0].1.is_empty()
                || w[1].1.is_empty()
                || gap >= (size(&w[0].1) + size(&w[1].1)) as f64 / 2.0 + 8.0
        })
    };
    let mut out = axis.clone();
    if axis.thin == Thin::Greedy {
        let mut kept: Vec<(f64, String)> = Vec::new();
        for t in ticks {
            let clear = kept.last().is_none_or(|k| fits(&[k.clone(), t.clone()]));
            if clear {
                kept.push(t);
            }
        }
        out.ticks = kept;
        return out;
    }
    for k in 1..=ticks.len().max(1) {
        let kept: Vec<(f64, String)> = ticks.iter().step_by(k).cloned().collect();
        if fits(&kept) || k == ticks.len() {
            out.ticks = kept;
            break;
        }
    }
    out
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    y_area: i32,
    pal: Palette,
) -> DrawResult {
    let mut area = area.clone();
    if let Some(t) = &panel.title {
        let f = bold(style::PANEL_TITLE_PX).color(&pal.foreground);
        area.draw_text(t, &f, (y_area, 0)).map_err(s)?;
        area = area.margin((style::PANEL_TITLE_PX * 1.6) as i32, 0, 0, 0);
    }
    let tick_font = font(style::TICK_PX).color(&pal.foreground);
    let x_area = (style::TICK_PX * 1.6) as i32
        + if panel.x.label.is_empty() {
            0
        } else {
            (style::AXIS_PX * 1.5) as i32
        };
    // Room on the right for the last x tick label, which is centred on the edge.
    let last_x_tick = panel
        .x
        .ticks
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|t| text_w(&area, &t.1, &tick_font) / 2)
        .unwrap_or(0);
    let (aw, ah) = area.dim_in_pixel();
    // Axis labels as large as the plot's sides allow.
    let (plot_w, plot_h) = (
        aw as i32 - y_area - last_x_tick.max(16),
        ah as i32 - 12 - x_area,
    );
    let mut axis_px = style::AXIS_PX;
    while axis_px > 26.0
        && (text_w(&area, &panel.y.label, &font(axis_px).into()) > plot_h - 8
            || text_w(&area, &panel.x.label, &font(axis_px).into()) > plot_w - 8)
    {
        axis_px -= 2.0;
    }
    let axis_font = font(axis_px).color(&pal.foreground);
    let x_axis = thin(&panel.x, plot_w, |t| text_w(&area, t, &tick_font));
    let y_axis = thin(&panel.y, plot_h, |_| (style::TICK_PX * 1.3) as i32);
    let mut chart = ChartBuilder::on(&area)
        .margin_top(12)
        .margin_right(last_x_tick.max(16) as u32)
        .x_label_area_size(x_area as u32)
        .y_label_area_size(y_area as u32)
        .build_cartesian_2d(Ticked(&x_axis), Ticked(&y_axis))
        .map_err(s)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(x_axis.ticks.len().max(1))
        .y_labels(y_axis.ticks.len().max(1))
        .label_style(tick_font.clone())
        .axis_desc_style(axis_font.clone())
        .x_desc(panel.x.label.clone())
        .y_desc(panel.y.label.clone())
        .axis_style(pal.foreground.stroke_width(AXIS_W))
        .bold_line_style(pal.grid.stroke_width(2))
        .light_line_style(TRANSPARENT)
        .set_all_tick_mark_size(8);
    if !panel.x.grid {
        mesh.disable_x_mesh();
    }
    if !panel.y.grid {
        mesh.disable_y_mesh();
    }
    mesh.draw().map_err(s)?;

    let plot = chart.plotting_area();
    // Bars first, then lines, then crosses and texts on top.
    for m in &panel.marks {
        if let Mark::Bar { x, y, color, fill } = m {
            let a = plot.map_coordinate(&(x.0, y.1));
            let b = plot.map_coordinate(&(x.1, y.0));
            let (a, b) = (area_offset(plot, a), area_offset(plot, b));
            draw_rect(&plot.strip_coord_spec(), a, b, *color, *fill, pal)?;
        }
    }
    for m in &panel.marks {
        if let Mark::Line {
            points,
            color,
            dash,
            dots,
        } = m
        {
            let px: Vec<(i32, i32)> = points
                .iter()
                .map(|p| area_offset(plot, plot.map_coordinate(p)))
                .collect();
            let strip = plot.strip_coord_spec();
            if px.len() > 1 {
                draw_path(&strip, &px, *color, *dash)?;
            }
            if *dots {
                for p in &px {
                    strip
                        .draw(&Circle::new(*p, DOT_R, color.filled()))
                        .map_err(s)?;
                }
            }
        }
    }
    for m in &panel.marks {
        if let Mark::Range { from, to, color } = m {
            let a = area_offset(plot, plot.map_coordinate(from));
            let b = area_offset(plot, plot.map_coordinate(to));
            let strip = plot.strip_coord_spec();
            draw_path(&strip, &[a, b], *color, Dash::Solid)?;
            // Caps across the bar, whichever way it runs.
            let vertical = (a.0 - b.0).abs() < (a.1 - b.1).abs();
            for p in [a, b] {
                let cap = if vertical {
                    [(p.0 - RANGE_CAP, p.1), (p.0 + RANGE_CAP, p.1)]
                } else {
                    [(p.0, p.1 - RANGE_CAP), (p.0, p.1 + RANGE_CAP)]
                };
                draw_path(&strip, &cap, *color, Dash::Solid)?;
            }
        }
    }
    for m in &panel.marks {
        match m {
            Mark::Failure { at, color } => {
                let p = area_offset(plot, plot.map_coordinate(at));
                draw_cross(&plot.strip_coord_spec(), p, *color, pal)?;
            }
            Mark::Text { at, text, anchor } => {
                let mut p = area_offset(plot, plot.map_coordinate(at));
                // After a cross drawn at the same point.
                if panel
                    .marks
                    .iter()
                    .any(|m| matches!(m, Mark::Failure { at: c, .. } if c == at))
                {
                    p.0 += CROSS + 8;
                }
                let f = font(style::VALUE_PX).color(&pal.foreground);
                let (p, pos) = match anchor {
                    Anchor::Left => ((p.0 + 12, p.1), Pos::new(HPos::Left, VPos::Center)),
                };
                plot.strip_coord_spec()
                    .draw(&Text::new(text.clone(), p, f.pos(pos)))
                    .map_err(s)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// An [`Axis`] as a plotters coordinate: linear over `lo..hi`, key points
/// (labels, grid lines) exactly at the axis' ticks, labelled with their text.
struct Ticked<'a>(&'a Axis);

impl Ranged for Ticked<'_> {
    type ValueType = f64;
    type FormatOption = NoDefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (lo, hi) = (self.0.lo, self.0.hi);
        if hi == lo {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - lo) / (hi - lo);
        limit.0 + (t * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.0.ticks.iter().map(|t| t.0).collect()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.0.lo..self.0.hi
    }
}

impl ValueFormatter<f64> for Ticked<'_> {
    fn format_ext(&self, v: &f64) -> String {
        self.0.tick_label(*v)
    }
}

/// Backend pixel coordinates to coordinates relative to the plotting area.
fn area_offset<DB: DrawingBackend, CT: CoordTranslate>(
    plot: &DrawingArea<DB, CT>,
    p: (i32, i32),
) -> (i32, i32) {
    let (xr, yr) = plot.get_pixel_range();
    (p.0 - xr.start, p.1 - yr.start)
}
