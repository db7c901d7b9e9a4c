//! Copying text to the operator's own clipboard with an OSC 52 escape sequence: the terminal
//! emulator on the operator's desk (xterm, iTerm2, kitty, WezTerm, Windows Terminal, ...) puts
//! the text on its clipboard, so a thumbprint can be copied out of a console reached over SSH.
//! tmux passes the sequence on only with `set-clipboard on`.

use std::io::{self, Write};

use base64ct::{Base64, Encoding};

/// The sequence that sets the clipboard (`c`) to `text`: `ESC ] 52 ; c ; <base64> BEL`.
/// BEL ends it rather than `ESC \`, as more terminals accept that.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", Base64::encode_string(text.as_bytes()))
}

/// Writes the sequence for `text` to the terminal and flushes it.
pub fn copy(terminal: &mut impl Write, text: &str) -> io::Result<()> {
    terminal.write_all(osc52(text).as_bytes())?;
    terminal.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_travels_base64_encoded_between_the_osc_52_markers() {
        assert_eq!(osc52("roost"), "\x1b]52;c;cm9vc3Q=\x07");
        assert_eq!(osc52(""), "\x1b]52;c;\x07");
        let thumbprint = "3f".repeat(32);
        let sequence = osc52(&thumbprint);
        let payload = sequence
            .strip_prefix("\x1b]52;c;")
            .and_then(|rest| rest.strip_suffix('\x07'))
            .unwrap();
        // Standard alphabet with padding, no line breaks: what terminals decode.
        assert!(
            payload
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        );
        assert_eq!(Base64::decode_vec(payload).unwrap(), thumbprint.as_bytes());
    }

    #[test]
    fn copy_writes_the_sequence_and_nothing_else() {
        let mut terminal = Vec::new();
        copy(&mut terminal, "ab").unwrap();
        assert_eq!(terminal, b"\x1b]52;c;YWI=\x07");
    }
}
