//! Files replaced all at once: a reader (a peer copying BLD, the next
//! sidecar reading a checkpoint) sees the old contents or the new, whole.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `data` to a temp file of its own in `path`'s directory (two
/// writers never share one), syncs it, gives it `mode`, and renames it over
/// `path`.
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, data, mode, true)
}

/// As [`write`], without the sync: the new contents survive this process
/// ending however it ends (they are in the kernel's cache), not the host
/// crashing, after which the file may be empty. For state that is written
/// often and whose loss costs little (mirror checkpoints).
pub fn write_unsynced(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(data)?;
    if sync {
        file.as_file().sync_all()?;
    }
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
