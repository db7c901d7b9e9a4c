//! Reading and writing the RON file. Writes are atomic: a temporary file beside the target is
//! written, synced and renamed over it, so a crash never leaves half a config behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::error::ConfigError;
use super::model::Config;
use super::template::default_config_text;

#[derive(Debug, Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
}

impl Config {
    /// Parses RON text and validates it.
    pub fn from_ron(text: &str) -> Result<Config, ConfigError> {
        let config: Config = ron::from_str(text).map_err(|err| {
            // RON reports the position and the unknown or mistyped key; that is the field.
            ConfigError::new(
                format!("line {}", err.span.start.line),
                err.code.to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The config as pretty RON, as written to disk.
    pub fn to_ron(&self) -> String {
        let pretty = ron::ser::PrettyConfig::new()
            .depth_limit(6)
            .struct_names(false)
            .indentor("    ".to_string());
        // Serialising plain data structures cannot fail.
        ron::ser::to_string_pretty(self, pretty).unwrap_or_default()
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigFileError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = ron::from_str(&text).map_err(|err| ConfigFileError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "line {}, column {}: {}",
                err.span.start.line, err.span.start.col, err.code
            ),
        })?;
        config
            .validate()
            .map_err(|source| ConfigFileError::Invalid {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(config)
    }

    /// Reads a config file, first writing the commented defaults when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Config, ConfigFileError> {
        if !path.exists() {
            write_atomically(path, default_config_text().as_bytes())?;
        }
        Config::load(path)
    }

    /// Writes the config atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), ConfigFileError> {
        let mut text =
            String::from("// roost configuration, written by roost. Comments are not kept.\n");
        text.push_str(&self.to_ron());
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ConfigFileError> {
    write_file_atomically_with(path, contents, &write_and_sync)
}

/// Replaces `path` with `contents` so that a reader sees the old file or the new one, never
/// half of it: a temporary file beside it, created with `mode` (before the umask), synced,
/// renamed over it, and the directory synced. The config file and the key and certificate
/// files are all written this way. On any failure (a full disk, a read-only directory) the
/// error is returned, the old file is left as it was and the temporary file is removed.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    replace_file_with(path, contents, mode, &write_and_sync)
}

/// How [`replace_file`] puts the contents into the temporary file and makes them durable.
/// A seam: tests give a writer that fails as a full disk does, which no real file in a
/// test's directory can be made to do.
pub type WriteContents = dyn Fn(&mut fs::File, &[u8]) -> std::io::Result<()> + Send + Sync;

/// The real [`WriteContents`]: write everything, then fsync.
pub fn write_and_sync(file: &mut fs::File, contents: &[u8]) -> std::io::Result<()> {
    file.write_all(contents)?;
    file.sync_all()
}

/// [`replace_file`] with the temporary file written by `write`.
pub fn replace_file_with(
    path: &Path,
    contents: &[u8],
    mode: u32,
    write: &WriteContents,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        // A stale temporary file from a crashed run may have another mode: start afresh.
        let _ = fs::remove_file(&temp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        write(&mut file, contents)?;
        drop(file);
        fs::rename(&temp, path)?;
        // Make the rename itself durable.
        if let Ok(dir) = fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Writes `contents` atomically (temporary file beside `path`, fsync, rename).
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> Result<(), ConfigFileError> {
    write_atomically(path, contents)
}

/// [`write_file_atomically`] through the seam of [`replace_file_with`].
pub fn write_file_atomically_with(
    path: &Path,
    contents: &[u8],
    write: &WriteContents,
) -> Result<(), ConfigFileError> {
    // 0666 before the umask, as a file the operator creates.
    replace_file_with(path, contents, 0o666, write).map_err(|source| ConfigFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a full disk does: part of the data is written, then ENOSPC.
    fn disk_full(file: &mut fs::File, contents: &[u8]) -> std::io::Result<()> {
        file.write_all(&contents[..contents.len() / 2])?;
        Err(std::io::Error::from_raw_os_error(28))
    }

    #[test]
    fn a_full_disk_is_reported_and_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.ron");
        fs::write(&path, "// the old file\n()\n").unwrap();
        let err =
            replace_file_with(&path, b"(broker: (enabled: true))", 0o600, &disk_full).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "// the old file\n()\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["roost.ron"],
            "the half-written temporary file is removed"
        );

        // Through the config writer, the reason names the file and the cause.
        let err = write_file_atomically_with(&path, b"()", &disk_full).unwrap_err();
        let reason = format!("{err}");
        assert!(reason.contains("roost.ron"), "{reason}");
        assert!(reason.contains("No space left on device"), "{reason}");
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.ron");
        let mut config = Config::default();
        config.broker.enabled = true;
        config.broker.tcp.port = 2883;
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn load_or_create_writes_the_commented_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.ron");
        let config = Config::load_or_create(&path).unwrap();
        assert_eq!(config, Config::default());
        assert!(fs::read_to_string(&path).unwrap().contains("//"));
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let err = Config::from_ron("(broker: (tcp: (prot: 1883)))").unwrap_err();
        assert!(err.message.contains("prot"), "{err}");
    }

    #[test]
    fn invalid_value_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.ron");
        fs::write(&path, "(limits: (max_inflight: 0))").unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(err.to_string().contains("limits.max_inflight"), "{err}");
    }

    #[test]
    fn mistyped_value_is_refused() {
        let err = Config::from_ron("(broker: (tcp: (port: 70000)))").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
