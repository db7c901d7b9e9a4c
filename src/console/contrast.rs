//! Contrast between a theme's text colours and the backgrounds they are drawn on, as WCAG 2
//! defines it (relative luminance, ratio from 1:1 to 21:1). Text needs 4.5:1 (WCAG 2.1
//! success criterion 1.4.3); the theme tests check every pair the console draws.
//!
//! Named colours are taken as xterm's defaults; `reset` is the terminal's own colour, assumed
//! black for dark themes and white for the light one.

use ratatui::style::Color;

use super::theme::Theme;

/// The minimum for text (WCAG 2.1 SC 1.4.3, level AA).
pub const MIN_TEXT_CONTRAST: f64 = 4.5;

/// `color` as sRGB, with `reset` as `default`.
pub fn rgb(color: Color, default: (u8, u8, u8)) -> (u8, u8, u8) {
    match color {
        Color::Reset => default,
        Color::Black => (0, 0, 0),
        Color::Red => (205, 0, 0),
        Color::Green => (0, 205, 0),
        Color::Yellow => (205, 205, 0),
        Color::Blue => (0, 0, 238),
        Color::Magenta => (205, 0, 205),
        Color::Cyan => (0, 205, 205),
        Color::Gray => (229, 229, 229),
        Color::DarkGray => (127, 127, 127),
        Color::LightRed => (255, 0, 0),
        Color::LightGreen => (0, 255, 0),
        Color::LightYellow => (255, 255, 0),
        Color::LightBlue => (92, 92, 255),
        Color::LightMagenta => (255, 0, 255),
        Color::LightCyan => (0, 255, 255),
        Color::White => (255, 255, 255),
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(index) => indexed(index),
    }
}

/// The xterm 256-colour palette.
fn indexed(index: u8) -> (u8, u8, u8) {
    const BASIC: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match index {
        0..=15 => rgb(BASIC[usize::from(index)], (0, 0, 0)),
        16..=231 => {
            let level = |n: u8| if n == 0 { 0 } else { 55 + 40 * n };
            let n = index - 16;
            (level(n / 36), level((n / 6) % 6), level(n % 6))
        }
        _ => {
            let grey = 8 + 10 * (index - 232);
            (grey, grey, grey)
        }
    }
}

fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// The WCAG contrast ratio of two colours, 1.0 to 21.0.
pub fn ratio(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (light, dark) = if la > lb { (la, lb) } else { (lb, la) };
    (light + 0.05) / (dark + 0.05)
}

/// Every text colour of `theme` with the background it is drawn on, by name.
pub fn text_pairs(theme: &Theme) -> Vec<(&'static str, Color, Color)> {
    let t = theme;
    let mut pairs = Vec::new();
    for (name, fg) in [
        ("text", t.text),
        ("text_dim", t.text_dim),
        ("block_title", t.block_title),
        ("block_title_focused", t.block_title_focused),
        ("dirty_marker", t.dirty_marker),
        ("danger_fg", t.danger_fg),
        ("ok_fg", t.ok_fg),
        ("warning_fg", t.warning_fg),
        ("label_fg", t.label_fg),
        ("value_fg", t.value_fg),
        ("command_key_fg", t.command_key_fg),
        ("command_text_fg", t.command_text_fg),
        ("log_in_fg", t.log_in_fg),
        ("log_out_fg", t.log_out_fg),
    ] {
        pairs.push((name, fg, t.background));
    }
    // The title bar draws its status marks on its own background.
    for (name, fg) in [
        ("title_bar_fg on title_bar_bg", t.title_bar_fg),
        ("ok_fg on title_bar_bg", t.ok_fg),
        ("dirty_marker on title_bar_bg", t.dirty_marker),
        ("danger_fg on title_bar_bg", t.danger_fg),
        ("warning_fg on title_bar_bg", t.warning_fg),
    ] {
        pairs.push((name, fg, t.title_bar_bg));
    }
    // A selected row keeps the colour of a changed or conflicting field.
    for (name, bg) in [
        ("on selection_bg", t.selection_bg),
        ("on selection_unfocused_bg", t.selection_unfocused_bg),
    ] {
        pairs.push((leak(format!("selection_fg {name}")), t.selection_fg, bg));
        pairs.push((leak(format!("dirty_marker {name}")), t.dirty_marker, bg));
        pairs.push((leak(format!("danger_fg {name}")), t.danger_fg, bg));
    }
    pairs.push(("input_fg on input_bg", t.input_fg, t.input_bg));
    pairs
}

/// Pair names are built once per test run; a static name keeps the list simple.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::theme::BUILT_IN;

    #[test]
    fn known_ratios() {
        assert!((ratio((0, 0, 0), (255, 255, 255)) - 21.0).abs() < 0.01);
        assert!((ratio((10, 20, 30), (10, 20, 30)) - 1.0).abs() < 0.001);
        assert_eq!(indexed(196), (255, 0, 0));
        assert_eq!(indexed(244), (128, 128, 128));
    }

    #[test]
    fn every_theme_meets_wcag_text_contrast() {
        let mut failures = Vec::new();
        for (name, _) in BUILT_IN {
            let theme = Theme::built_in(name).expect("built-in themes parse");
            let terminal = if name == "light" {
                (255, 255, 255)
            } else {
                (0, 0, 0)
            };
            for (pair, fg, bg) in text_pairs(&theme) {
                let fg_rgb = rgb(
                    fg,
                    if name == "light" {
                        (0, 0, 0)
                    } else {
                        (229, 229, 229)
                    },
                );
                let value = ratio(fg_rgb, rgb(bg, terminal));
                if value < MIN_TEXT_CONTRAST {
                    failures.push(format!("{name}: {pair} ({fg} on {bg}) is {value:.2}:1"));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "below {MIN_TEXT_CONTRAST}:1 —\n{}",
            failures.join("\n")
        );
    }
}
