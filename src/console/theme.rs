//! Colours named by purpose, loaded from RON theme files (`themes/*.ron`).
//!
//! The three shipped themes are compiled in, so the binary works from any directory; a theme
//! name that is not built in is read as a path. With `NO_COLOR` set every colour is dropped and
//! the styles fall back to modifiers (bold, reversed, underlined).

use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use super::error::ConsoleError;

/// The built-in themes: name and RON text.
pub const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.ron")),
    ("light", include_str!("../../themes/light.ron")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.ron"),
    ),
];

macro_rules! theme_colours {
    ($($name:ident),* $(,)?) => {
        /// A theme file as written: colour names (`"lightcyan"`, `"#005f87"`, `"42"`).
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            $($name: String,)*
        }

        /// The console's colours, each named for what it is used for.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Theme {
            $(pub $name: Color,)*
            /// `NO_COLOR` is set: styles use modifiers only.
            pub no_color: bool,
        }

        impl Theme {
            fn from_file(file: ThemeFile) -> Result<Theme, String> {
                Ok(Theme {
                    $($name: Color::from_str(&file.$name)
                        .map_err(|_| format!("{}: unknown colour {:?}", stringify!($name), file.$name))?,)*
                    no_color: false,
                })
            }

            /// Every colour reset: used only if a compiled-in theme failed to parse (a bug
            /// the theme tests catch).
            fn plain() -> Theme {
                Theme {
                    $($name: Color::Reset,)*
                    no_color: true,
                }
            }

            /// The same theme with every colour reset (for `NO_COLOR`).
            pub fn without_colours(mut self) -> Theme {
                $(self.$name = Color::Reset;)*
                self.no_color = true;
                self
            }
        }
    };
}

theme_colours!(
    text,
    text_dim,
    background,
    title_bar_bg,
    title_bar_fg,
    block_border,
    block_border_focused,
    block_title,
    block_title_focused,
    selection_bg,
    selection_fg,
    selection_unfocused_bg,
    dirty_marker,
    danger_fg,
    ok_fg,
    warning_fg,
    label_fg,
    value_fg,
    input_bg,
    input_fg,
    command_key_fg,
    command_text_fg,
    sparkline_in,
    sparkline_out,
    log_in_fg,
    log_out_fg,
    popup_border,
);

impl Default for Theme {
    fn default() -> Self {
        Theme::built_in("dark").unwrap_or_else(Theme::plain)
    }
}

impl Theme {
    /// Parses a theme from RON text.
    pub fn from_ron(text: &str) -> Result<Theme, String> {
        let file: ThemeFile = ron::from_str(text).map_err(|e| e.to_string())?;
        Theme::from_file(file)
    }

    /// One of the compiled-in themes by name.
    pub fn built_in(name: &str) -> Option<Theme> {
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, text)| Theme::from_ron(text).ok())
    }

    /// A theme by built-in name or by path to a RON file.
    pub fn load(name_or_path: &str) -> Result<Theme, ConsoleError> {
        if let Some(theme) = Theme::built_in(name_or_path) {
            return Ok(theme);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| ConsoleError::ThemeRead {
            path: path.to_path_buf(),
            source,
        })?;
        Theme::from_ron(&text).map_err(|message| ConsoleError::ThemeParse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Picks the theme: `--theme` first, then the config's `console.theme`; honours `NO_COLOR`
    /// (any non-empty value, see no-color.org).
    pub fn resolve(cli: Option<&str>, config: &str, no_color: bool) -> Result<Theme, ConsoleError> {
        let theme = Theme::load(cli.unwrap_or(config))?;
        Ok(if no_color {
            theme.without_colours()
        } else {
            theme
        })
    }

    // Styles by purpose. Without colours they lean on modifiers so that nothing is lost.

    pub fn base(&self) -> Style {
        Style::new().fg(self.text).bg(self.background)
    }

    pub fn dim(&self) -> Style {
        let style = Style::new().fg(self.text_dim);
        if self.no_color {
            style.add_modifier(Modifier::DIM)
        } else {
            style
        }
    }

    pub fn title_bar(&self) -> Style {
        let style = Style::new().fg(self.title_bar_fg).bg(self.title_bar_bg);
        if self.no_color {
            style.add_modifier(Modifier::REVERSED)
        } else {
            style
        }
    }

    pub fn border(&self, focused: bool) -> Style {
        if focused {
            let style = Style::new().fg(self.block_border_focused);
            if self.no_color {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            }
        } else {
            Style::new().fg(self.block_border)
        }
    }

    pub fn block_title(&self, focused: bool) -> Style {
        if focused {
            Style::new()
                .fg(self.block_title_focused)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(self.block_title)
        }
    }

    pub fn selection(&self, focused: bool) -> Style {
        if self.no_color {
            let style = Style::new().add_modifier(Modifier::REVERSED);
            return if focused {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            };
        }
        if focused {
            Style::new().fg(self.selection_fg).bg(self.selection_bg)
        } else {
            Style::new()
                .fg(self.selection_fg)
                .bg(self.selection_unfocused_bg)
        }
    }

    pub fn dirty(&self) -> Style {
        Style::new()
            .fg(self.dirty_marker)
            .add_modifier(Modifier::BOLD)
    }

    pub fn danger(&self) -> Style {
        let style = Style::new().fg(self.danger_fg).add_modifier(Modifier::BOLD);
        if self.no_color {
            style.add_modifier(Modifier::UNDERLINED)
        } else {
            style
        }
    }

    pub fn ok(&self) -> Style {
        Style::new().fg(self.ok_fg)
    }

    pub fn warning(&self) -> Style {
        let style = Style::new().fg(self.warning_fg);
        if self.no_color {
            style.add_modifier(Modifier::ITALIC)
        } else {
            style
        }
    }

    pub fn label(&self) -> Style {
        Style::new().fg(self.label_fg)
    }

    pub fn value(&self) -> Style {
        Style::new().fg(self.value_fg)
    }

    pub fn input(&self) -> Style {
        let style = Style::new().fg(self.input_fg).bg(self.input_bg);
        if self.no_color {
            style.add_modifier(Modifier::UNDERLINED)
        } else {
            style
        }
    }

    pub fn command_key(&self) -> Style {
        Style::new()
            .fg(self.command_key_fg)
            .add_modifier(Modifier::BOLD)
    }

    pub fn command_text(&self) -> Style {
        Style::new().fg(self.command_text_fg)
    }

    pub fn popup_border(&self) -> Style {
        Style::new().fg(self.popup_border)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_parses() {
        for (name, text) in BUILT_IN {
            let theme = Theme::from_ron(text);
            assert!(theme.is_ok(), "theme {name}: {:?}", theme.err());
        }
    }

    #[test]
    fn themes_differ_and_default_is_dark() {
        let dark = Theme::built_in("dark").unwrap();
        let light = Theme::built_in("light").unwrap();
        assert_ne!(dark, light);
        assert_eq!(Theme::default(), dark);
    }

    #[test]
    fn no_color_drops_colours_and_keeps_modifiers() {
        let theme = Theme::resolve(None, "dark", true).unwrap();
        assert_eq!(theme.selection_bg, Color::Reset);
        assert!(
            theme
                .selection(true)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
    }

    #[test]
    fn cli_theme_wins_over_config() {
        let theme = Theme::resolve(Some("light"), "dark", false).unwrap();
        assert_eq!(theme, Theme::built_in("light").unwrap());
    }

    #[test]
    fn unknown_colour_names_the_field() {
        let text = BUILT_IN[0].1.replace("\"#ff8787\"", "\"notacolour\"");
        let err = Theme::from_ron(&text).unwrap_err();
        assert!(err.contains("danger_fg"), "{err}");
    }

    #[test]
    fn missing_theme_file_is_an_error() {
        assert!(Theme::load("/nonexistent/theme.ron").is_err());
    }
}
