import Foundation
import Testing

@testable import CofferCrypto

/// RFC 9497 Appendix A.1.1: OPRF(ristretto255, SHA-512) in base mode, from Tests/Vectors.
@Suite struct OPRFVectorTests {
    struct VectorFile: Decodable {
        struct Suite: Decodable {
            let contextString: String
            let hashToGroupDST: String
            let deriveKeyPairDST: String
            enum CodingKeys: String, CodingKey {
                case contextString = "contextString_hex", hashToGroupDST = "HashToGroup_DST_hex"
                case deriveKeyPairDST = "DeriveKeyPair_DST_hex"
            }
        }
        struct Vector: Decodable, CustomTestStringConvertible {
            let name, input, blind, blindedElement, evaluationElement, output: String
            enum CodingKeys: String, CodingKey {
                case name, input = "Input", blind = "Blind", blindedElement = "BlindedElement"
                case evaluationElement = "EvaluationElement", output = "Output"
            }
            var testDescription: String { name }
        }
        let suite: Suite
        let seed, keyInfo, privateKey: String
        let vectors: [Vector]
        enum CodingKeys: String, CodingKey {
            case suite, seed = "Seed", keyInfo = "KeyInfo", privateKey = "skSm", vectors
        }
    }

    static let file: VectorFile = TestVectors.load("oprf-ristretto255-sha512.json")

    @Test func suiteConstantsMatch() {
        let suite = Self.file.suite
        #expect(OPRF.contextString == TestBytes.hex(suite.contextString))
        #expect(OPRF.hashToGroupDST == TestBytes.hex(suite.hashToGroupDST))
        #expect(OPRF.deriveKeyPairDST == TestBytes.hex(suite.deriveKeyPairDST))
    }

    @Test func deriveKeyPairMatches() throws {
        let (privateKey, publicKey) = try Self.serverKeyPair()
        #expect(TestBytes.hex(privateKey.copyBytes()) == Self.file.privateKey)
        #expect(publicKey == Ristretto255.Element(generatorTimes: privateKey))
    }

    @Test(arguments: file.vectors)
    func blindEvaluateFinalizeMatch(_ vector: VectorFile.Vector) throws {
        let (privateKey, _) = try Self.serverKeyPair()
        let input = SecureBytes(copying: TestBytes.hex(vector.input))
        let blind = try Ristretto255.Scalar(bytes: TestBytes.hex(vector.blind))

        let blinded = try OPRF.blind(input: input, blind: blind)
        #expect(TestBytes.hex(blinded.bytes) == vector.blindedElement)
        let evaluated = OPRF.blindEvaluate(privateKey: privateKey, blindedElement: blinded)
        #expect(TestBytes.hex(evaluated.bytes) == vector.evaluationElement)
        let output = try OPRF.finalize(input: input, blind: blind, evaluatedElement: evaluated)
        #expect(TestBytes.hex(output.copyBytes()) == vector.output)

        // The random-blind entry point draws exactly the blind.
        let random = ScriptedRandom([TestBytes.hex(vector.blind)])
        let (drawnBlind, drawnBlinded) = try OPRF.blind(input: input, using: random)
        #expect(drawnBlind.copyBytes() == blind.copyBytes())
        #expect(drawnBlinded == blinded)
        #expect(random.isExhausted)
    }

    @Test func blindingHidesTheInputAndUnblindingRemovesTheBlind() throws {
        let (privateKey, _) = try Self.serverKeyPair()
        let input = SecureBytes(copying: Array("hunter2".utf8))
        let (blindA, blindedA) = try OPRF.blind(input: input, using: SystemRandom())
        let (blindB, blindedB) = try OPRF.blind(input: input, using: SystemRandom())
        #expect(blindedA != blindedB)
        let outputA = try OPRF.finalize(input: input, blind: blindA, evaluatedElement: OPRF.blindEvaluate(privateKey: privateKey, blindedElement: blindedA))
        let outputB = try OPRF.finalize(input: input, blind: blindB, evaluatedElement: OPRF.blindEvaluate(privateKey: privateKey, blindedElement: blindedB))
        #expect(outputA.constantTimeEquals(outputB))
    }

    @Test func identityAndNonCanonicalElementsAreRejected() {
        // libsodium's is_valid_point accepts the identity's all-zero encoding; we must not.
        #expect(throws: OPAQUEError.invalidElement) { try Ristretto255.Element(bytes: [UInt8](repeating: 0, count: 32)) }
        // 2^255 - 1 is no canonical field element; 1 is not a valid (even, canonical) encoding.
        #expect(throws: OPAQUEError.invalidElement) { try Ristretto255.Element(bytes: [UInt8](repeating: 0xff, count: 32)) }
        #expect(throws: OPAQUEError.invalidElement) { try Ristretto255.Element(bytes: [1] + [UInt8](repeating: 0, count: 31)) }
        #expect(throws: OPAQUEError.invalidLength(expected: 32, actual: 31)) { try Ristretto255.Element(bytes: [UInt8](repeating: 0, count: 31)) }
    }

    @Test func nonCanonicalAndZeroScalarsAreRejected() throws {
        // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let order = TestBytes.hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
        #expect(throws: OPAQUEError.invalidScalar) { try Ristretto255.Scalar(bytes: order) }
        #expect(throws: OPAQUEError.invalidScalar) { try Ristretto255.Scalar(bytes: [UInt8](repeating: 0, count: 32)) }
        #expect(throws: OPAQUEError.invalidScalar) { try Ristretto255.Scalar(bytes: [UInt8](repeating: 0xff, count: 32)) }
        #expect(throws: OPAQUEError.invalidLength(expected: 32, actual: 33)) { try Ristretto255.Scalar(bytes: [UInt8](repeating: 1, count: 33)) }
        var largest = order
        largest[0] -= 1
        #expect(try Ristretto255.Scalar(bytes: largest).copyBytes() == largest)
        // A random scalar is drawn by rejection: ℓ itself is skipped, the next draw taken.
        let random = ScriptedRandom([order, [7] + [UInt8](repeating: 0, count: 31)])
        #expect(Ristretto255.Scalar.random(using: random).copyBytes() == [7] + [UInt8](repeating: 0, count: 31))
    }

    static func serverKeyPair() throws -> (Ristretto255.Scalar, Ristretto255.Element) {
        try OPRF.deriveKeyPair(seed: SecureBytes(copying: TestBytes.hex(file.seed)), info: TestBytes.hex(file.keyInfo))
    }
}

/// The known-answer files in Tests/Vectors, found from this source file so that a fresh clone
/// needs nothing else.
enum TestVectors {
    static func load<T: Decodable>(_ name: String, as type: T.Type = T.self) -> T {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.lastPathComponent != "Tests" && directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        let url = directory.appendingPathComponent("Vectors").appendingPathComponent(name)
        do {
            return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load test vectors \(url.path): \(error)")
        }
    }
}

/// Hands out a vector's "random" values in order and checks that each draw asks for that
/// value's length, so the implementation's draw order is pinned to the RFC's.
final class ScriptedRandom: RandomSource, @unchecked Sendable {
    private var values: [[UInt8]]
    private let lock = Lock()

    init(_ values: [[UInt8]]) { self.values = values }

    var isExhausted: Bool { lock.withLock { values.isEmpty } }

    func bytes(_ count: Int) -> [UInt8] {
        lock.withLock {
            guard !values.isEmpty else {
                Issue.record("unexpected random draw of \(count) bytes: the script is exhausted")
                return [UInt8](repeating: 0x42, count: count)
            }
            let next = values.removeFirst()
            if next.count != count { Issue.record("random draw of \(count) bytes, but the script's next value has \(next.count)") }
            return next
        }
    }
}
