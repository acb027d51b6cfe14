//! Handing memory back to the system after a large transient job.
//!
//! Compiling and sending a 10,000-rule ruleset briefly needs tens of MB (the TOML tree, the JSON
//! batch); glibc keeps freed memory in its arenas, so without a trim the idle helper would sit
//! on its peak forever. The helper is idle almost always, so the trim is worth its microseconds.

/// One malloc arena for the whole process: the helper's threads wait far more than they
/// allocate, and per-thread arenas would each keep their own high-water mark.
pub fn use_one_arena() {
    // SAFETY: mallopt only sets glibc tunables; called once at start, before other threads exist.
    #[allow(unsafe_code)] // FFI to glibc; nix and std offer no wrapper
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns freed heap memory to the kernel.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no pointers from us and
    // is safe to call at any time from any thread.
    #[allow(unsafe_code)] // FFI to glibc; nix and std offer no wrapper
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims a moment from now, once the call that caused a large allocation has replied and
/// dropped its buffers (the message, the compiled ruleset, the diff).
pub fn release_soon() {
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        release_free_memory();
    });
}
