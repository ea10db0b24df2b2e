import CBlake2

/// The one call site of libb2.
enum CBlake2Bridge {
    static func blake2b(
        _ out: UnsafeMutableRawPointer, _ outLength: Int, _ input: UnsafeRawPointer?, _ inputLength: Int,
        _ key: UnsafeRawPointer?, _ keyLength: Int
    ) -> Int32 {
        CBlake2.blake2b(out, input, key, outLength, inputLength, keyLength)
    }
}
