import CofferCrypto
import Testing

@Suite struct Argon2idTests {
    let salt = (0..<16).map { UInt8($0) }
    let password = SecureBytes(copying: Array("correct horse".utf8))
    /// The smallest cost libsodium accepts: one pass over 8 KiB.
    let ops = Argon2id.minimumOpsLimit
    let memory: UInt64 = 8 << 10

    @Test func minimumParametersAreTheTinyOnesTestsRelyOn() {
        #expect(Argon2id.minimumOpsLimit == 1)
        #expect(Argon2id.minimumMemoryBytes == 8 << 10)
        #expect(Argon2id.saltSize == 16)
    }

    /// Argon2id v1.3, one lane; expected values from an independent implementation
    /// (Python `cryptography`'s Argon2id with lanes = 1, memory_cost in KiB).
    @Test func matchesAnIndependentImplementation() throws {
        let a = try Argon2id.derive(password: password, salt: salt, opsLimit: 1, memoryBytes: 8 << 10)
        #expect(TestBytes.hex(a.copyBytes()) == "3bfa796a86260b73457e1290b51695931a17e266f601d0fb45563e282fb6865b")
        let b = try Argon2id.derive(password: password, salt: salt, opsLimit: 2, memoryBytes: 16 << 10)
        #expect(TestBytes.hex(b.copyBytes()) == "3226ba6af239f1237bddfc82b53ea2e2f9efaee7ecf61415c48a89edf6bd5d33")
        let long = try Argon2id.derive(password: password, salt: salt, opsLimit: 1, memoryBytes: 8 << 10, outputLength: 64)
        #expect(TestBytes.hex(long.copyBytes()) == """
            3b161160b35d1164436a0d945d3392763f34ec86442a4786ee7225ab66ea2ea2\
            5fb6c7071f90e7e163c4511837f0e9d34e752a4c0993eae3f4d170075911d93a
            """)
    }

    @Test func isDeterministic() throws {
        let a = try Argon2id.derive(password: password, salt: salt, opsLimit: ops, memoryBytes: memory)
        let b = try Argon2id.derive(password: password, salt: salt, opsLimit: ops, memoryBytes: memory)
        #expect(a.count == 32)
        #expect(a.constantTimeEquals(b))
    }

    @Test func isSaltSensitive() throws {
        let base = try Argon2id.derive(password: password, salt: salt, opsLimit: ops, memoryBytes: memory).copyBytes()
        for i in [0, 7, 15] {
            var other = salt
            other[i] ^= 0x01
            let derived = try Argon2id.derive(password: password, salt: other, opsLimit: ops, memoryBytes: memory)
            #expect(derived.copyBytes() != base, "salt byte \(i)")
        }
    }

    @Test func isPasswordAndCostSensitive() throws {
        let base = try Argon2id.derive(password: password, salt: salt, opsLimit: ops, memoryBytes: memory).copyBytes()
        let other = SecureBytes(copying: Array("correct horsf".utf8))
        #expect(try Argon2id.derive(password: other, salt: salt, opsLimit: ops, memoryBytes: memory).copyBytes() != base)
        #expect(try Argon2id.derive(password: password, salt: salt, opsLimit: ops + 1, memoryBytes: memory).copyBytes() != base)
        #expect(try Argon2id.derive(password: password, salt: salt, opsLimit: ops, memoryBytes: memory * 2).copyBytes() != base)
    }

    @Test func emptyPasswordIsAcceptedAndDistinct() throws {
        let empty = try Argon2id.derive(password: SecureBytes(copying: [UInt8]()), salt: salt, opsLimit: 1, memoryBytes: 8 << 10)
        #expect(TestBytes.hex(empty.copyBytes()) == "31ed41e2d73f27fdfe4eb4bec651341e58ba43477051c6fe4adad735d82ee08a")
    }

    @Test func parametersBelowTheMinimumAreRefused() {
        #expect(throws: Argon2id.Failure.failed(opsLimit: 0, memoryBytes: 8 << 10)) {
            try Argon2id.derive(password: password, salt: salt, opsLimit: 0, memoryBytes: 8 << 10)
        }
        #expect(throws: Argon2id.Failure.failed(opsLimit: 1, memoryBytes: 1024)) {
            try Argon2id.derive(password: password, salt: salt, opsLimit: 1, memoryBytes: 1024)
        }
    }
}
