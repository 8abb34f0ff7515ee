//! Blobs written in pieces: an export too big to hold in a plugin's memory
//! is appended a piece at a time and made whole once at the end.
//!
//! Each piece is a file of its own, `pieces/<key>/<offset>`, in the same
//! service; [`assemble`] writes them, in order, as the file of `key` (a
//! rename on Disk, a multipart upload on S3) and [`clear`] deletes them. An append
//! names the offset it writes at and first drops every piece at or past
//! it: a job resumed from a checkpoint passes the length it checkpointed,
//! and whatever its killed run wrote after that is gone, so every row of
//! the file is written exactly once.

use super::{Backend, BlobError, check_key};

/// The folder of `key`'s pieces.
fn folder(key: &str) -> String {
    format!("pieces/{key}")
}

/// The piece of `key` that starts at `offset`.
fn piece(key: &str, offset: u64) -> String {
    format!("pieces/{key}/{offset:020}")
}

/// `key`'s pieces as (offset, size), in order.
async fn pieces(backend: &Backend<'_>, key: &str) -> Result<Vec<(u64, u64)>, BlobError> {
    let mut found: Vec<(u64, u64)> = backend
        .list(&folder(key))
        .await?
        .into_iter()
        .filter_map(|(name, size)| Some((name.parse().ok()?, size)))
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Writes `bytes` at `offset` of `key`'s pieces, after dropping any piece
/// at or past `offset`; returns the length written so far. `ends_at_offset`
/// says the caller wrote the last piece, ending at `offset`, itself: then
/// there is nothing to drop or check, and no listing (which would make a
/// long export's appends quadratic).
pub async fn append(
    backend: &Backend<'_>,
    key: &str,
    (offset, ends_at_offset): (u64, bool),
    bytes: &[u8],
) -> Result<u64, BlobError> {
    check_key(key)?;
    if ends_at_offset {
        if !bytes.is_empty() {
            backend.write(&piece(key, offset), bytes).await?;
        }
        return Ok(offset + bytes.len() as u64);
    }
    let mut end = 0;
    for (at, size) in pieces(backend, key).await? {
        if at >= offset {
            backend.delete(&piece(key, at)).await?;
        } else {
            end = at + size;
        }
    }
    if end != offset {
        return Err(BlobError::Offset { key: key.to_string(), offset, length: end });
    }
    if !bytes.is_empty() {
        backend.write(&piece(key, offset), bytes).await?;
    }
    Ok(offset + bytes.len() as u64)
}

/// Writes `key`'s pieces as its file, whole; returns the file's size. The
/// pieces stay until [`clear`], so that a job killed before it recorded
/// being past its last row can still append where its cursor says. With
/// no pieces left, the file assembled earlier stands (or an empty one).
pub async fn assemble(backend: &Backend<'_>, key: &str) -> Result<u64, BlobError> {
    check_key(key)?;
    let found = pieces(backend, key).await?;
    let mut end = 0;
    for (at, size) in &found {
        if *at != end {
            return Err(BlobError::Offset { key: key.to_string(), offset: *at, length: end });
        }
        end += size;
    }
    if found.is_empty() {
        return match backend.size(key).await {
            Err(BlobError::NotFound(_)) => backend.write(key, &[]).await.map(|()| 0),
            size => size,
        };
    }
    let names: Vec<String> = found.iter().map(|(at, _)| piece(key, *at)).collect();
    backend.assemble(key, &names).await
}

/// Deletes `key`'s pieces, once its file is whole.
pub async fn clear(backend: &Backend<'_>, key: &str) -> Result<(), BlobError> {
    check_key(key)?;
    backend.delete_folder(&folder(key)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DiskService;

    #[tokio::test]
    async fn a_resumed_append_drops_what_followed_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskService::new(dir.path());
        let backend = Backend::Disk(&disk);
        assert_eq!(append(&backend, "export", (0, false), b"id,total\n").await, Ok(9));
        assert_eq!(append(&backend, "export", (9, false), b"1,10\n").await, Ok(14));
        // Killed after writing "2,20\n" past its checkpoint at 14.
        assert_eq!(append(&backend, "export", (14, false), b"2,20\n").await, Ok(19));
        assert_eq!(append(&backend, "export", (14, false), b"2,20\n").await, Ok(19), "resumed at 14");
        assert_eq!(append(&backend, "export", (19, false), b"3,30\n").await, Ok(24));
        let gap = append(&backend, "export", (30, false), b"x").await.unwrap_err();
        assert!(matches!(gap, BlobError::Offset { length: 24, .. }), "{gap:?}");
        assert_eq!(assemble(&backend, "export").await, Ok(24));
        let file = std::fs::read(disk.path_for("export").unwrap()).unwrap();
        assert_eq!(file, b"id,total\n1,10\n2,20\n3,30\n");
        clear(&backend, "export").await.unwrap();
        assert!(!disk.path_for("pieces/export").unwrap().exists(), "the pieces are gone");
        assert_eq!(assemble(&backend, "export").await, Ok(24), "assembled again, the file stands");
    }
}
