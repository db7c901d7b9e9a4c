//! Writing the applied configuration honestly: never replacing a read-only file, reporting
//! every failure (read-only directory, disk full) with its reason, keeping the commented
//! layout of `roost config init`, and keeping a copy of a file whose hand-written comments a
//! save cannot keep.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{
    Config, WriteContents, has_foreign_comments, render_commented, write_and_sync,
};

#[derive(Debug, Error)]
#[error("{0}")]
pub struct SaveError(pub String);

/// A save that happened.
#[derive(Debug)]
pub struct Saved {
    /// The text now in the file.
    pub text: String,
    pub comments_copied_to: Option<PathBuf>,
}

/// The file's text, `None` when it does not exist.
pub fn read_if_exists(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reads and validates the file, with the text read.
pub fn load_with_text(path: &Path) -> Result<(Config, String), String> {
    let text =
        fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let config = Config::from_ron(&text).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok((config, text))
}

/// Where the copy of a hand-commented file goes.
pub fn comments_copy_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".hand-written");
    path.with_file_name(name)
}

/// Writes `config` to `path` in the commented layout. `on_disk` is the file's current text.
pub fn save(path: &Path, config: &Config, on_disk: Option<&str>) -> Result<Saved, SaveError> {
    save_with(path, config, on_disk, &write_and_sync)
}

/// [`save`] with the file's contents written by `write` (see [`WriteContents`]).
pub fn save_with(
    path: &Path,
    config: &Config,
    on_disk: Option<&str>,
    write: &WriteContents,
) -> Result<Saved, SaveError> {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().readonly()
    {
        // Renaming over it would succeed in a writable directory (and always as root): the
        // operator made it read-only, so it is not replaced.
        return Err(SaveError(format!(
            "{} is read-only; it was not replaced",
            path.display()
        )));
    }
    let text = render_commented(config);
    let mut comments_copied_to = None;
    if let Some(old) = on_disk
        && has_foreign_comments(old)
    {
        let copy = comments_copy_path(path);
        fs::write(&copy, old).map_err(|err| {
            SaveError(format!(
                "cannot keep a copy of the hand-written comments in {}: {err}",
                copy.display()
            ))
        })?;
        comments_copied_to = Some(copy);
    }
    crate::config::write_file_atomically_with(path, text.as_bytes(), write)
        .map_err(|err| SaveError(describe_write_error(&err)))?;
    Ok(Saved {
        text,
        comments_copied_to,
    })
}

/// The write error with its cause, in words an operator can act on.
fn describe_write_error(err: &crate::config::ConfigFileError) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    if let Some(source) = err.source()
        && !text.contains(&source.to_string())
    {
        text.push_str(": ");
        text.push_str(&source.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_read_only_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.ron");
        fs::write(&path, "()").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let err = save(&path, &Config::default(), Some("()")).unwrap_err();
        assert!(err.0.contains("read-only"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "()");
    }

    #[test]
    fn a_missing_directory_is_reported_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("roost.ron");
        let err = save(&path, &Config::default(), None).unwrap_err();
        assert!(err.0.contains("No such file"), "{err}");
    }

    #[test]
    fn hand_written_comments_are_copied_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.ron");
        let old = "// my notes about this broker\n()\n";
        fs::write(&path, old).unwrap();
        let saved = save(&path, &Config::default(), Some(old)).unwrap();
        let copy = saved.comments_copied_to.expect("a copy is kept");
        assert_eq!(fs::read_to_string(copy).unwrap(), old);
        assert_eq!(fs::read_to_string(&path).unwrap(), saved.text);
        // The saved file has only the template's comments: the next save keeps no copy.
        let again = save(&path, &Config::default(), Some(&saved.text)).unwrap();
        assert_eq!(again.comments_copied_to, None);
    }
}
