//! One weft process at a time writes a data directory: the raw log has one
//! writer, and the loader one committer.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Held while this process writes the data directory.
pub struct DataDirLock {
    _file: File,
}

pub fn lock(data_dir: &Path) -> Result<DataDirLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another weft process (weft serve?) is using {}; stop it, or query it with weft sql",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}
