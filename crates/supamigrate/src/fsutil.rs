//! Files written so that a reader (or a re-run after a kill) never sees half
//! of one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` with `mode` through a temporary file in the same
/// folder, synced and renamed over `path`: the file is either the old one or
/// the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Refuses a path that exists and is not a folder (a file given where a
/// folder is wanted), naming it; changes nothing.
pub fn require_folder(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(crate::error::Error::invalid_input(format!(
            "{} is a file, not a folder; nothing was written",
            dir.display()
        ))
        .with_hint("give the path of a folder (it is created when missing)"));
    }
    Ok(())
}

/// Creates `dir` (and its parents) when missing; a folder it creates is
/// owner-only (0700).
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    require_folder(dir)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| crate::error::Error::io(format!("creating {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, b"new contents", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new contents");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
