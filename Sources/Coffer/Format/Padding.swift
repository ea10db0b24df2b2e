/// Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
/// Communication with PURBs", PETS 2019): a length L is rounded up so that only its top
/// ⌊log2 E⌋+1 bits may be non-zero, where E = ⌊log2 L⌋. Overhead is at most 12 % for tiny
/// objects and falls with size (≤ 3.2 % at 16 MiB); the padded length leaks O(log log L) bits.
public enum Padme {
    public static func paddedLength(_ length: Int) -> Int {
        guard length > 2 else { return length }
        let e = Int.bitWidth - 1 - length.leadingZeroBitCount         // ⌊log2 L⌋
        let s = Int.bitWidth - 1 - e.leadingZeroBitCount + 1          // ⌊log2 E⌋ + 1
        let lastBits = e - s
        let mask = (1 << lastBits) - 1
        return (length + mask) & ~mask
    }
}

/// Coarse size buckets (FORMAT.md §7.3) for the objects whose length would otherwise measure
/// what one backup added: the partly filled packs a backup closes at its end, and index objects
/// (about 45 bytes per blob). A length becomes the next power of two, and at least `minimum`,
/// so an observer learns only ⌊log2⌋ of it — a factor of two, where Padmé gives a few percent.
public enum SizeBucket {
    public static func paddedLength(_ length: Int, minimum: Int) -> Int {
        let floor = max(length, minimum, 1)
        guard floor > 1 else { return 1 }
        return 1 << (Int.bitWidth - (floor - 1).leadingZeroBitCount)
    }
}
