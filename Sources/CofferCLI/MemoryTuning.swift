import CMalloc

/// Process-wide allocator settings, which the command chooses for the repository it opens (the
/// library sets nothing process-wide).
enum MemoryTuning {
    /// A backup to a local repository stages its packs in files, and its large blocks are
    /// read buffers: mapped and unmapped rather than carved from malloc's arenas. With glibc's
    /// default, which moves this threshold up as large blocks are freed, a first backup's freed
    /// buffers stayed resident in fragmented arenas (peak RSS 124 MiB against 86 MiB, on the
    /// 2.1 GiB sample). Not for remote storage: a pack is built in memory there, and mapping
    /// 16 MiB afresh for every one cost page faults (system time 4.1 s against 2.6 s for a
    /// first backup to S3, measured on a loaded machine). Not for restore either: every range
    /// read and every plaintext above the threshold was then a fresh mapping whose pages the
    /// kernel zeroes, 12 % of a restore's samples in `clear_page_erms` (restore of the sample
    /// 3.0–4.0 s with it, 2.6–2.8 s without; peak RSS 157 against 215–227 MiB).
    static func forLocalBackup() {
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    }
}
