//! The admin socket's marker in the broker's data directory: a small file that names the
//! socket, so that `roost --data-dir DIR` finds the broker running on DIR whatever config
//! file it was started with. The socket's own path still follows from the config file
//! ([`super::path`]); the marker only points at it.
//!
//! - The broker writes it (mode 0600) when its admin socket opens, moves it when an Apply
//!   changes the data directory, and removes it when it stops. It is written only into a
//!   directory that exists: a broker whose data directory was never created (nothing stored
//!   yet) is found by its config file alone.
//! - A console reads it and connects. A marker left by a broker that was killed names a
//!   socket nobody answers on: the failed connect shows it is stale and it is ignored. A
//!   marker that is not a regular file, not owned by this user (or root), or writable by
//!   anyone else is ignored too: it could point the console at someone else's socket, to
//!   which it would send its configuration.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use super::path::current_uid;

/// The marker's file name inside the data directory.
pub const MARKER_FILE: &str = "admin-socket";

/// A marker longer than this is not one (a socket path fits in 108 bytes).
const MAX_MARKER_BYTES: u64 = 4096;

/// Where the marker of `data_dir` lives.
pub fn marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER_FILE)
}

/// The socket named by the marker in `data_dir`, when there is a trustworthy one.
pub fn read_marker(data_dir: &Path) -> Option<PathBuf> {
    let path = marker_path(data_dir);
    // Not followed through a symbolic link: the marker itself must be this user's file.
    let meta = fs::symlink_metadata(&path).ok()?;
    let uid = current_uid();
    if !meta.file_type().is_file()
        || (meta.uid() != uid && meta.uid() != 0)
        || meta.mode() & 0o022 != 0
    {
        warn!(marker = %path.display(), "ignoring an admin socket marker that is not this user's private file");
        return None;
    }
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .ok()?
        .take(MAX_MARKER_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    let socket = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    socket.is_absolute().then_some(socket)
}

/// The broker's side: keeps the marker in the data directory of the running configuration.
#[derive(Debug)]
pub struct SocketMarker {
    socket: PathBuf,
    /// The marker written, if any.
    written: Option<PathBuf>,
    /// Set when the broker stops: no marker is written after that.
    closed: bool,
}

impl SocketMarker {
    pub fn new(socket: &Path) -> SocketMarker {
        SocketMarker {
            socket: socket.to_path_buf(),
            written: None,
            closed: false,
        }
    }

    /// Puts the marker into `data_dir` (when that directory exists) and takes it out of the
    /// previous one.
    pub fn place(&mut self, data_dir: &Path) {
        if self.closed {
            return;
        }
        let target = marker_path(data_dir);
        if self.written.as_deref() == Some(target.as_path()) && self.names_our_socket(&target) {
            return;
        }
        self.remove();
        if !data_dir.is_dir() {
            debug!(data_dir = %data_dir.display(), "no data directory yet: no admin socket marker");
            return;
        }
        let mut contents = self.socket.as_os_str().as_bytes().to_vec();
        contents.push(b'\n');
        match crate::config::replace_file(&target, &contents, 0o600) {
            Ok(()) => {
                debug!(marker = %target.display(), "admin socket marker written");
                self.written = Some(target);
            }
            Err(err) => {
                warn!(marker = %target.display(), error = %err, "cannot write the admin socket marker; consoles find this broker by its config file only");
            }
        }
    }

    /// Removes the marker written, unless another broker has replaced it since.
    pub fn remove(&mut self) {
        if let Some(marker) = self.written.take()
            && self.names_our_socket(&marker)
        {
            let _ = fs::remove_file(&marker);
        }
    }

    /// Removes the marker for good: the broker stops.
    pub fn close(&mut self) {
        self.closed = true;
        self.remove();
    }

    fn names_our_socket(&self, marker: &Path) -> bool {
        fs::read(marker).is_ok_and(|bytes| {
            bytes.strip_suffix(b"\n") == Some(self.socket.as_os_str().as_bytes())
        })
    }
}

impl Drop for SocketMarker {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_marker_is_private_follows_the_data_directory_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        fs::create_dir(&first).unwrap();
        fs::create_dir(&second).unwrap();
        let socket = Path::new("/run/user/1000/roost/roost-0123.sock");
        let mut marker = SocketMarker::new(socket);

        marker.place(&first);
        let mode = fs::metadata(marker_path(&first)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_marker(&first).as_deref(), Some(socket));

        // An apply moved the data directory: the marker moves with it.
        marker.place(&second);
        assert!(!marker_path(&first).exists());
        assert_eq!(read_marker(&second).as_deref(), Some(socket));

        // A directory that does not exist gets none (and is not created).
        let missing = dir.path().join("missing");
        marker.place(&missing);
        assert!(!missing.exists());
        assert!(!marker_path(&second).exists());

        marker.place(&second);
        drop(marker);
        assert!(
            !marker_path(&second).exists(),
            "removed when the broker stops"
        );
    }

    #[test]
    fn another_brokers_marker_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut marker = SocketMarker::new(Path::new("/tmp/roost-0/a.sock"));
        marker.place(dir.path());
        fs::write(marker_path(dir.path()), "/tmp/roost-0/b.sock\n").unwrap();
        marker.close();
        assert_eq!(
            read_marker(dir.path()).as_deref(),
            Some(Path::new("/tmp/roost-0/b.sock"))
        );
        // Closed: an apply that arrives late writes nothing.
        marker.place(dir.path());
        assert_eq!(
            read_marker(dir.path()).as_deref(),
            Some(Path::new("/tmp/roost-0/b.sock"))
        );
    }

    #[test]
    fn a_marker_others_may_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = marker_path(dir.path());
        fs::write(&path, "/tmp/elsewhere.sock\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_marker(dir.path()), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_marker(dir.path()).is_some());
        // A relative path is not a socket this side can trust to mean the same thing.
        fs::write(&path, "relative.sock\n").unwrap();
        assert_eq!(read_marker(dir.path()), None);
    }
}
