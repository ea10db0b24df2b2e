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
