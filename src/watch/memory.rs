//! The process's resident memory.

/// The process's resident memory (RSS) in bytes, or `None` where the platform does not tell.
pub(crate) fn resident_bytes() -> Option<u64> {
    memory_stats::memory_stats().and_then(|m| u64::try_from(m.physical_mem).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_memory_is_read_here() {
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            let rss = resident_bytes().expect("Linux and macOS tell");
            assert!(rss > 1 << 20, "{rss}");
        }
    }
}
