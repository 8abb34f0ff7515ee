//! Active Storage's Disk service. A blob with key `xtapjjcj…` lives at
//! `<root>/xt/ap/xtapjjcj…`, the folders being the key's first two pairs
//! of characters, as Rails lays it out: the runner reads the files Rails
//! wrote, and Rails reads the ones the runner writes.

use super::{BlobError, check_key};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// One Disk service's root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskService {
    root: PathBuf,
}

impl DiskService {
    pub fn new(root: impl Into<PathBuf>) -> DiskService {
        DiskService { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file of `key` is, as Rails' `DiskService#path_for` has it.
    pub fn path_for(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        let chars: Vec<char> = key.chars().collect();
        let pair = |from: usize| chars.iter().skip(from).take(2).collect::<String>();
        let mut path = self.root.clone();
        for folder in [pair(0), pair(2)] {
            if !folder.is_empty() {
                path.push(folder);
            }
        }
        path.push(key);
        Ok(path)
    }

    /// The bytes of `key` from `offset`, at most `length` of them (to the
    /// end when `None`); refused when more than `cap` would come back.
    pub async fn read(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
        cap: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let path = self.path_for(key)?;
        let failed = |err: std::io::Error| io_error(key, &path, err);
        let mut file = tokio::fs::File::open(&path).await.map_err(failed)?;
        let size = file.metadata().await.map_err(failed)?.len();
        let (start, wanted) = super::span(key, size, offset, length, cap)?;
        file.seek(SeekFrom::Start(start)).await.map_err(failed)?;
        let mut bytes = Vec::with_capacity(wanted as usize);
        file.take(wanted).read_to_end(&mut bytes).await.map_err(failed)?;
        Ok(bytes)
    }

    /// The size of the file of `key`.
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        let path = self.path_for(key)?;
        Ok(tokio::fs::metadata(&path).await.map_err(|err| io_error(key, &path, err))?.len())
    }

    /// Writes `bytes` as the file of `key`, whole or not at all: into a
    /// temporary file beside it, then renamed into place, so a reader never
    /// sees half a file.
    pub async fn write(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        let failed = |err: std::io::Error| io_error(key, &path, err);
        let folder = path.parent().expect("a blob path has a folder");
        tokio::fs::create_dir_all(folder).await.map_err(failed)?;
        let temp = temp_beside(&path);
        if let Err(err) = tokio::fs::write(&temp, bytes).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(failed(err));
        }
        tokio::fs::rename(&temp, &path).await.map_err(failed)
    }

    /// The files directly under `folder/`, as (name, size); none when it
    /// doesn't exist.
    pub async fn list(&self, folder: &str) -> Result<Vec<(String, u64)>, BlobError> {
        let path = self.path_for(folder)?;
        let failed = |err: std::io::Error| io_error(folder, &path, err);
        let mut entries = match tokio::fs::read_dir(&path).await {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            entries => entries.map_err(failed)?,
        };
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(failed)? {
            let meta = entry.metadata().await.map_err(failed)?;
            if meta.is_file() {
                files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
            }
        }
        Ok(files)
    }

    /// Writes the files of `parts`, in order, as the file of `key`: into a
    /// temporary file beside it, then renamed into place. Returns its size.
    pub async fn assemble(&self, key: &str, parts: &[String]) -> Result<u64, BlobError> {
        let path = self.path_for(key)?;
        let failed = |err: std::io::Error| io_error(key, &path, err);
        let folder = path.parent().expect("a blob path has a folder");
        tokio::fs::create_dir_all(folder).await.map_err(failed)?;
        let temp = temp_beside(&path);
        let written = async {
            let mut out = tokio::fs::File::create(&temp).await?;
            let mut size = 0;
            for part in parts {
                let mut input =
                    tokio::fs::File::open(self.path_for(part).map_err(std::io::Error::other)?).await?;
                size += tokio::io::copy(&mut input, &mut out).await?;
            }
            out.sync_all().await?;
            Ok::<u64, std::io::Error>(size)
        }
        .await;
        match written {
            Ok(size) => tokio::fs::rename(&temp, &path).await.map(|()| size).map_err(failed),
            Err(err) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(failed(err))
            }
        }
    }

    /// Deletes the file of `key`; one already gone is no error, as in Rails.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_error(key, &path, err)),
            _ => Ok(()),
        }
    }

    /// Deletes every file under `prefix/`, as `Blob#purge` deletes a blob's
    /// variants (`variants/<key>/`).
    pub async fn delete_folder(&self, prefix: &str) -> Result<(), BlobError> {
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        let path = self.path_for(trimmed)?;
        match tokio::fs::remove_dir_all(&path).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_error(prefix, &path, err)),
            _ => Ok(()),
        }
    }
}

/// A fresh temporary name in `path`'s folder, hidden, for a file renamed
/// into place once it is whole.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().expect("a blob path has a file name").display();
    path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()))
}

fn io_error(key: &str, path: &Path, err: std::io::Error) -> BlobError {
    match err.kind() {
        std::io::ErrorKind::NotFound => BlobError::NotFound(key.to_string()),
        _ => BlobError::Unavailable { key: key.to_string(), message: format!("{}: {err}", path.display()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_laid_out_as_rails_lays_them_out() {
        let disk = DiskService::new("/srv/shop/storage");
        let path = disk.path_for("xtapjjcjiudrlk3tmwyjgpuobabd").unwrap();
        assert_eq!(path, Path::new("/srv/shop/storage/xt/ap/xtapjjcjiudrlk3tmwyjgpuobabd"));
        let variant = disk.path_for("variants/xtap/5f1a").unwrap();
        assert_eq!(variant, Path::new("/srv/shop/storage/va/ri/variants/xtap/5f1a"));
        assert_eq!(disk.path_for("abc").unwrap(), Path::new("/srv/shop/storage/ab/c/abc"));
        assert!(disk.path_for("../../etc/passwd").is_err());
    }

    #[tokio::test]
    async fn written_files_read_back_whole_or_by_range_under_a_cap() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskService::new(dir.path());
        let key = "xtapjjcjiudrlk3tmwyjgpuobabd";
        assert_eq!(disk.read(key, 0, None, 100).await, Err(BlobError::NotFound(key.into())));
        disk.write(key, b"0123456789").await.unwrap();
        assert!(dir.path().join("xt/ap").join(key).is_file());
        assert_eq!(disk.read(key, 0, None, 100).await.unwrap(), b"0123456789");
        assert_eq!(disk.read(key, 2, Some(3), 3).await.unwrap(), b"234");
        assert_eq!(disk.read(key, 8, Some(10), 100).await.unwrap(), b"89");
        assert_eq!(disk.read(key, 20, None, 100).await.unwrap(), b"");
        assert!(matches!(
            disk.read(key, 0, None, 9).await,
            Err(BlobError::TooLarge { size: 10, cap: 9, .. })
        ));
        assert_eq!(disk.size(key).await.unwrap(), 10);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("xt/ap")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");

        disk.delete(key).await.unwrap();
        disk.delete(key).await.unwrap();
        assert_eq!(disk.size(key).await, Err(BlobError::NotFound(key.into())));
    }

    #[tokio::test]
    async fn a_blobs_variants_go_with_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskService::new(dir.path());
        disk.write("variants/xtap/one", b"1").await.unwrap();
        disk.write("variants/xtap/two", b"2").await.unwrap();
        disk.write("variants/other/one", b"3").await.unwrap();
        disk.delete_folder("variants/xtap/").await.unwrap();
        disk.delete_folder("variants/xtap/").await.unwrap();
        assert!(disk.size("variants/xtap/one").await.is_err());
        assert_eq!(disk.size("variants/other/one").await.unwrap(), 1);
    }
}
