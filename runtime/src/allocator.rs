//! The runner's memory allocator: mimalloc, except in the child that
//! compiles a plugin.
//!
//! Every job allocates and frees its payload, its acknowledgement and its
//! sandbox's bookkeeping, often on another thread than the one that
//! allocated them; glibc's malloc spent about a sixth of a no-op job's CPU
//! there (consolidating free chunks, arena locks), mimalloc well under a
//! tenth.
//!
//! `runner compile-plugin` (see `plugin::compile`) runs under
//! `RLIMIT_DATA`, which counts address space mapped writable, not memory
//! used. mimalloc maps its arenas a gigabyte at a time and keeps freed
//! pages mapped, so under that cap it failed compiles that fit in it
//! with room to spare. That child allocates with the system's malloc
//! instead, whose mappings follow what it uses, so `--compile-memory`
//! keeps meaning what it says. The choice is made once, before `main`,
//! from the command line the runner itself gives that child.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

/// The subcommand that allocates with the system's malloc.
const COMPILE_COMMAND: &CStr = c"compile-plugin";

/// Set before `main` in the compiling child; never changed afterwards.
static SYSTEM: AtomicBool = AtomicBool::new(false);

/// mimalloc, or the system's malloc in the compiling child.
pub struct Allocator;

// SAFETY: each call goes to one of two sound allocators. In the runner
// the choice is always mimalloc. In the compiling child it is the system's
// from before `main`; a block mimalloc handed out before the choice was
// made (none is expected, as nothing allocates that early) is still freed
// and resized by mimalloc, which can tell its own blocks.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if SYSTEM.load(Ordering::Relaxed) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if SYSTEM.load(Ordering::Relaxed) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on to whichever allocator
        // handed the block out.
        unsafe {
            if by_system(ptr) { System.dealloc(ptr, layout) } else { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`.
        unsafe {
            if by_system(ptr) {
                System.realloc(ptr, layout, new_size)
            } else {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Whether the system's malloc handed out `ptr`.
fn by_system(ptr: *mut u8) -> bool {
    // SAFETY: mimalloc only compares the address with its own regions.
    SYSTEM.load(Ordering::Relaxed) && !unsafe { libmimalloc_sys::mi_is_in_heap_region(ptr.cast()) }
}

/// Runs before `main` (glibc passes a constructor the command line): the
/// compiling child's first argument is its subcommand.
extern "C" fn choose(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    if argc < 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes the process's argv, `argc` valid C strings.
    let first = unsafe { *argv.add(1) };
    if !first.is_null() && unsafe { CStr::from_ptr(first) } == COMPILE_COMMAND {
        SYSTEM.store(true, Ordering::Relaxed);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".init_array")]
static CHOOSE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = choose;
