//! Reading a plugin file safely. The plugins directory may hold anything
//! named `*.wasm`: a FIFO (reading it would block until someone writes), a
//! device, a huge sparse file, a link to a secret. A file is opened without
//! blocking, must be a regular file no larger than the limit, and must
//! start like WebAssembly; errors never quote its contents.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest plugin file read by default: the Python plugin, interpreter
/// included, is 18 MB.
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;

/// The first bytes of every WebAssembly module and component.
const MAGIC: &[u8] = b"\0asm";

/// Reads the plugin at `path`, refusing anything but a regular file of at
/// most `max_size` bytes that starts like WebAssembly.
pub fn read(path: &Path, max_size: u64) -> Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .context("cannot open it")?;
    let meta = file.metadata().context("cannot stat it")?;
    if !meta.is_file() {
        bail!("it is not a regular file (a FIFO, a device, a socket or a directory)");
    }
    if meta.len() > max_size {
        bail!("it is {} bytes, more than the limit of {max_size} (--max-plugin-size)", meta.len());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while we read: never take more than the limit.
    file.take(max_size + 1).read_to_end(&mut bytes).context("cannot read it")?;
    if bytes.len() as u64 > max_size {
        bail!("it grew past the limit of {max_size} bytes (--max-plugin-size) while being read");
    }
    if !bytes.starts_with(MAGIC) {
        bail!("it is not WebAssembly (it doesn't start with \\0asm)");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_webassembly_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wasm");
        std::fs::write(&good, b"\0asm\x0d\0\x01\0").unwrap();
        assert_eq!(read(&good, 100).unwrap().len(), 8);
        assert!(format!("{:#}", read(&good, 4).unwrap_err()).contains("--max-plugin-size"));
        let text = dir.path().join("secret.wasm");
        std::fs::write(&text, "root:x:0:0:root").unwrap();
        let err = format!("{:#}", read(&text, 100).unwrap_err());
        assert!(err.contains("not WebAssembly") && !err.contains("root"), "{err}");
        let fifo = dir.path().join("fifo.wasm");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string naming a path in our temp dir.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(format!("{:#}", read(&fifo, 100).unwrap_err()).contains("not a regular file"));
        assert!(format!("{:#}", read(dir.path(), 100).unwrap_err()).contains("not a regular file"));
    }
}
