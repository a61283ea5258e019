//! Files replaced all at once: a reader (a peer copying BLD, the next
//! sidecar reading a checkpoint) sees the old contents or the new, whole.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `data` to a temp file of its own in `path`'s directory (two
/// writers never share one), syncs it, gives it `mode`, and renames it over
/// `path`.
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(data)?;
    file.as_file().sync_all()?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
