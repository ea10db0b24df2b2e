import CofferCrypto
import Testing

struct InitializerRefused: Error {}

@Suite struct SecureBytesTests {

    @Test func descriptionIsRedacted() {
        let secret = SecureBytes(copying: [0xde, 0xad, 0xbe, 0xef])
        for text in ["\(secret)", String(describing: secret), String(reflecting: secret), "\([secret])"] {
            #expect(text.contains("redacted"))
            #expect(!text.lowercased().contains("dead"))
            #expect(!text.contains("222"), "no decimal bytes either")
        }
        #expect(secret.description == "SecureBytes(4 bytes, redacted)")
    }

    @Test func copyBytesReturnsTheContents() {
        let bytes = TestBytes.pseudoRandom(40)
        let secret = SecureBytes(copying: bytes)
        #expect(secret.count == 40)
        #expect(secret.copyBytes() == bytes)
        #expect(secret.withUnsafeBytes { Array($0) } == bytes)
    }

    @Test func initializerFillsAndZeroLengthWorks() {
        let s = SecureBytes(count: 3) { buffer in
            for i in buffer.indices { buffer[i] = UInt8(i + 1) }
        }
        #expect(s.copyBytes() == [1, 2, 3])
        let empty = SecureBytes(count: 0) { _ in }
        #expect(empty.count == 0 && empty.copyBytes().isEmpty)
    }

    /// Runs in a child process: today the failing initialiser frees the buffer and then `deinit`
    /// frees it again (SecureBytes.swift, `catch { sodium_free(p); throw error }` after all stored
    /// properties are set), which crashes inside libsodium.
    @Test func throwingInitializerPropagatesTheErrorWithoutCrashing() async {
        await #expect(processExitsWith: .success) {
            do {
                _ = try SecureBytes(count: 8) { _ in throw InitializerRefused() }
                fatalError("the initializer's error was swallowed")
            } catch is InitializerRefused {
                // expected
            } catch {
                fatalError("unexpected error \(error)")
            }
        }
    }

    @Test func constantTimeEqualsComparesContentAndLength() {
        let a = SecureBytes(copying: [1, 2, 3, 4])
        #expect(a.constantTimeEquals(SecureBytes(copying: [1, 2, 3, 4])))
        #expect(!a.constantTimeEquals(SecureBytes(copying: [1, 2, 3, 5])))
        #expect(!a.constantTimeEquals(SecureBytes(copying: [1, 2, 3])))
    }

    @Test func randomSecretsHaveTheRequestedSizeAndDiffer() {
        let a = SecureBytes.random(count: 32), b = SecureBytes.random(count: 32)
        #expect(a.count == 32)
        #expect(!a.constantTimeEquals(b))
    }

    @Test func constantTimeEqualAndSecureZero() {
        #expect(constantTimeEqual([], []))
        #expect(constantTimeEqual([1, 2], [1, 2]))
        #expect(!constantTimeEqual([1, 2], [1, 3]))
        #expect(!constantTimeEqual([1, 2], [1, 2, 3]))
        var bytes: [UInt8] = [5, 6, 7]
        secureZero(&bytes)
        #expect(bytes == [0, 0, 0])
        var empty: [UInt8] = []
        secureZero(&empty)
        #expect(empty.isEmpty)
    }
}
