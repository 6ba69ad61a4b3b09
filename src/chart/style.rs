//! Colours, type sizes and the font: what every chart shares.
//!
//! # One colour per target
//! A target keeps its colour in every chart of a theme: the map is fixed by
//! name ([`target_color`]), never by the order targets appear in. The palette is
//! Okabe-Ito (safe for the common colour-vision deficiencies); its yellow is left
//! out (unreadable on white) and its black becomes the theme's foreground.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::style::{FontStyle, RGBColor};

/// The font family charts ask for. It is both the key the TTF is registered
/// under and the SVG `font-family`, so that a viewer without DejaVu falls back
/// to its own sans-serif.
pub const FAMILY: &str = "DejaVu Sans, sans-serif";
/// Where Debian's `fonts-dejavu-core` puts the regular face.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The bold face of the same package (titles); regular is used when it is missing.
pub const BOLD_FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
/// Overrides [`FONT_PATH`] (any TTF) on machines without the Debian package.
pub const FONT_ENV: &str = "COMETBENCH_FONT";

/// Canvas size, pixels: a 16:9 slide.
pub const WIDTH: u32 = 1920;
pub const HEIGHT: u32 = 1080;

/// Type sizes in CSS pixels (the em size an SVG viewer uses).
pub const TITLE_PX: f64 = 60.0;
pub const SUBTITLE_PX: f64 = 30.0;
pub const PANEL_TITLE_PX: f64 = 40.0;
pub const AXIS_PX: f64 = 40.0;
pub const TICK_PX: f64 = 32.0;
pub const LEGEND_PX: f64 = 32.0;
pub const VALUE_PX: f64 = 28.0;
pub const NOTE_PX: f64 = 26.0;
pub const FOOTER_PX: f64 = 22.0;

/// Plotters' font "size" for an em size in pixels: plotters writes
/// `font-size = size / 1.24` into SVG and scales glyphs alike.
pub fn size(px: f64) -> f64 {
    px * 1.24
}

/// Light (white slide) or dark (black slide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Theme {
    Light,
    Dark,
}

/// The colours of a theme.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub background: RGBColor,
    pub foreground: RGBColor,
    /// Notes and footer.
    pub muted: RGBColor,
    pub grid: RGBColor,
}

impl Theme {
    pub fn palette(self) -> Palette {
        match self {
            Theme::Light => Palette {
                background: RGBColor(255, 255, 255),
                foreground: RGBColor(25, 25, 25),
                muted: RGBColor(85, 85, 85),
                grid: RGBColor(222, 222, 222),
            },
            Theme::Dark => Palette {
                background: RGBColor(18, 18, 18),
                foreground: RGBColor(236, 236, 236),
                muted: RGBColor(176, 176, 176),
                grid: RGBColor(66, 66, 66),
            },
        }
    }
}

/// The targets with a fixed colour, in legend order.
pub const KNOWN_TARGETS: [&str; 9] = [
    "thread-per-connection",
    "thread-pool",
    "reactor",
    "uring",
    "green",
    "tokio",
    "nchan",
    "pushpin",
    "external",
];

/// Okabe-Ito colours by target name; unknown names get a grey that depends
/// on the name only.
pub fn target_color(name: &str, theme: Theme) -> RGBColor {
    match name {
        "thread-per-connection" => RGBColor(0xD5, 0x5E, 0x00), // vermillion
        "thread-pool" => RGBColor(0xE6, 0x9F, 0x00),           // orange
        "reactor" => match theme {
            Theme::Light => RGBColor(0x00, 0x72, 0xB2), // blue
            Theme::Dark => RGBColor(0x3A, 0x9B, 0xDB),  // the same blue, lifted for a dark slide
        },
        "uring" => RGBColor(0x00, 0x9E, 0x73), // bluish green
        // Okabe-Ito has no ninth colour; Paul Tol's muted olive and wine
        // stay apart from it on both themes.
        "green" => RGBColor(0x99, 0x99, 0x33), // olive
        "tokio" => match theme {
            Theme::Light => RGBColor(0x88, 0x22, 0x55), // wine
            Theme::Dark => RGBColor(0xC2, 0x4F, 0x8A),  // the same wine, lifted
        },
        "nchan" => RGBColor(0xCC, 0x79, 0xA7), // reddish purple
        "pushpin" => RGBColor(0x56, 0xB4, 0xE9), // sky blue
        "external" => theme.palette().foreground,
        other => {
            let h = other
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31) ^ b as u32);
            let g = 110 + (h % 60) as u8;
            RGBColor(g, g, g)
        }
    }
}

/// Sort key: known targets in their fixed order, then others by name.
pub fn target_rank(name: &str) -> (usize, String) {
    let i = KNOWN_TARGETS
        .iter()
        .position(|t| *t == name)
        .unwrap_or(KNOWN_TARGETS.len());
    (i, name.to_string())
}

/// `c` blended towards `toward` by `amount` (0: `c`, 1: `toward`).
pub fn mix(c: RGBColor, toward: RGBColor, amount: f64) -> RGBColor {
    let m = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * amount).round() as u8;
    RGBColor(m(c.0, toward.0), m(c.1, toward.1), m(c.2, toward.2))
}

/// Loads and registers the chart font once. The error names the package.
pub fn load_fonts() -> Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let regular = std::env::var_os(FONT_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(FONT_PATH));
            register(&regular, FontStyle::Normal).map_err(|e| {
                format!(
                    "cannot load the chart font {}: {e}; install the Debian package \
                     fonts-dejavu-core (apt-get install -y fonts-dejavu-core) or set {FONT_ENV} \
                     to a TTF file",
                    regular.display()
                )
            })?;
            let bold = Path::new(BOLD_FONT_PATH);
            if std::env::var_os(FONT_ENV).is_some() || register(bold, FontStyle::Bold).is_err() {
                register(&regular, FontStyle::Bold).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

fn register(path: &Path, style: FontStyle) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // Plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, style, bytes)
        .map_err(|_| "not a TrueType/OpenType font".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_target_has_its_own_colour() {
        for theme in [Theme::Light, Theme::Dark] {
            let colours: Vec<_> = KNOWN_TARGETS
                .iter()
                .map(|t| {
                    let c = target_color(t, theme);
                    (c.0, c.1, c.2)
                })
                .collect();
            let mut unique = colours.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), colours.len(), "{theme:?}");
            let bg = theme.palette().background;
            assert!(!colours.contains(&(bg.0, bg.1, bg.2)));
        }
    }

    #[test]
    fn every_dispatcher_has_a_known_colour() {
        for kind in dispatchers::Kind::ALL {
            assert!(KNOWN_TARGETS.contains(&kind.name()), "{}", kind.name());
        }
    }

    #[test]
    fn unknown_targets_are_grey_and_stable() {
        let a = target_color("mystery", Theme::Light);
        assert_eq!((a.0, a.0), (a.1, a.2));
        let b = target_color("mystery", Theme::Light);
        assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2));
    }

    #[test]
    fn mix_ends() {
        let c = RGBColor(0, 100, 200);
        let w = RGBColor(255, 255, 255);
        assert_eq!(mix(c, w, 0.0), c);
        assert_eq!(mix(c, w, 1.0), w);
    }
}
