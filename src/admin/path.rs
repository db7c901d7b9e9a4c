//! Where the admin socket of a config file lives.
//!
//! The path follows from the config file's canonical path, not from the data directory (which
//! an Apply can change), so that `roost serve --config F` and `roost --config F` meet at the
//! same socket however `F` is spelled. Sockets live in a private runtime directory
//! (`$XDG_RUNTIME_DIR/roost`, else `/tmp/roost-<uid>`, mode 0700 and owned by this user), never
//! beside the config file: its directory may be read-only, and a socket path is limited to
//! about 100 bytes.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The canonical form of a config path that may not exist yet: its directory canonicalised,
/// its file name kept.
pub fn canonical_config_path(config: &Path) -> io::Result<PathBuf> {
    if let Ok(path) = fs::canonicalize(config) {
        return Ok(path);
    }
    let file_name = config
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(fs::canonicalize(dir)?.join(file_name))
}

/// The admin socket of the broker running on `config`. Does not create anything.
pub fn socket_path_for(config: &Path) -> io::Result<PathBuf> {
    let canonical = canonical_config_path(config)?;
    let stem = canonical
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "roost".to_string());
    // Keep the readable part short: the whole path must fit in sockaddr_un (108 bytes).
    let stem: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(24)
        .collect();
    let hash = fnv1a64(canonical.as_os_str().as_encoded_bytes());
    Ok(runtime_dir().join(format!("{stem}-{hash:016x}.sock")))
}

/// The directory that holds admin sockets.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("roost"),
        _ => std::env::temp_dir().join(format!("roost-{}", current_uid())),
    }
}

/// Creates the runtime directory (mode 0700) or checks that the existing one is private:
/// owned by this user and not writable by anyone else, since whoever can write there could
/// put their own socket in the broker's place.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    let meta = fs::metadata(dir)?;
    if meta.uid() != current_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// This process's effective user id, read from the owner of `/proc/self` (no `unsafe` call
/// to `geteuid` needed).
pub fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// FNV-1a: a stable hash (the same in every process and build), unlike the std hashers.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_share_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("roost.ron");
        fs::write(&config, "()").unwrap();
        let dotted = dir.path().join(".").join("roost.ron");
        assert_eq!(
            socket_path_for(&config).unwrap(),
            socket_path_for(&dotted).unwrap()
        );
    }

    #[test]
    fn a_missing_file_has_a_socket_and_differs_from_its_neighbour() {
        let dir = tempfile::tempdir().unwrap();
        let a = socket_path_for(&dir.path().join("a.ron")).unwrap();
        let b = socket_path_for(&dir.path().join("b.ron")).unwrap();
        assert_ne!(a, b);
        assert!(a.as_os_str().len() < 108, "{}", a.display());
    }

    #[test]
    fn the_private_directory_is_0700() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run");
        ensure_private_dir(&runtime).unwrap();
        let mode = fs::metadata(&runtime).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
