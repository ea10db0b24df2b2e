import CMalloc

/// Process-wide allocator settings, which the command chooses for the repository it opens (the
/// library sets nothing process-wide).
enum MemoryTuning {
    /// With a local repository, packs are staged in files and the large blocks are read
    /// buffers: mapped and unmapped rather than carved from malloc's arenas. With glibc's
    /// default, which moves this threshold up as large blocks are freed, a first backup's freed
    /// buffers stayed resident in fragmented arenas (peak RSS 124 MiB against 86 MiB, on the
    /// 2.1 GiB sample). Not for remote storage: a pack is built in memory there, and mapping
    /// 16 MiB afresh for every one cost page faults (system time 4.1 s against 2.6 s for a
    /// first backup to S3, measured on a loaded machine).
    static func forLocalRepository() {
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
    }
}
