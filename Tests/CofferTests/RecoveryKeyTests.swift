import CofferCrypto
import Foundation
import Testing

@testable import Coffer

@Suite struct RecoveryKeyTests {
    static let hexDigits = Array("0123456789abcdef")
    /// A fixed key and a fresh random one.
    static func keys() -> [RecoveryKey] {
        [RecoveryKey(secret: SecureBytes(copying: (0..<24).map { UInt8($0 * 11 & 0xff) })), .generate()]
    }

    func groups(_ key: RecoveryKey) -> [[Character]] { key.singleLine.split(separator: " ").map { Array($0) } }
    func text(_ groups: [[Character]]) -> String { groups.map { String($0) }.joined(separator: " ") }

    func parseError(_ text: String) -> RecoveryKey.ParseError? {
        do {
            _ = try RecoveryKey(parsing: text)
            return nil
        } catch {
            return error
        }
    }

    @Test func generateDisplayParseRoundTrip() throws {
        for _ in 0..<20 {
            let key = RecoveryKey.generate()
            #expect(key.secret.count == 24)
            #expect(try RecoveryKey(parsing: key.displayText).secret.copyBytes() == key.secret.copyBytes())
            #expect(try RecoveryKey(parsing: key.singleLine).secret.copyBytes() == key.secret.copyBytes())
        }
    }

    @Test func displayTextIsFourLinesOfFourGroupsOfFourHexDigits() {
        let key = RecoveryKey.generate()
        let lines = key.displayText.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4)
        for line in lines {
            let groups = line.split(separator: " ", omittingEmptySubsequences: false)
            #expect(groups.count == 4)
            #expect(groups.allSatisfy { $0.count == 4 && $0.allSatisfy(Self.hexDigits.contains) })
        }
        #expect(key.singleLine == key.displayText.replacingOccurrences(of: "\n", with: " "))
    }

    @Test func generatedKeysDiffer() {
        #expect(RecoveryKey.generate().singleLine != RecoveryKey.generate().singleLine)
    }

    @Test func everySingleDigitSubstitutionIsATypoInThatGroup() {
        for key in Self.keys() {
            let original = groups(key)
            var misses: [String] = []
            for g in 0..<16 {
                for position in 0..<4 {
                    for digit in Self.hexDigits where digit != original[g][position] {
                        var typed = original
                        typed[g][position] = digit
                        let error = parseError(text(typed))
                        if error != .typo(groups: [g + 1]) {
                            misses.append("group \(g + 1) digit \(position + 1) → \(digit): \(String(describing: error))")
                        }
                    }
                }
            }
            #expect(misses.isEmpty, "\(misses.count) substitutions not reported: \(misses.prefix(5))")
        }
    }

    @Test func swappingTwoDifferentDigitsInsideAGroupIsDetected() {
        for key in Self.keys() {
            let original = groups(key)
            var checked = 0
            for g in 0..<16 {
                for i in 0..<4 {
                    for j in (i + 1)..<4 where original[g][i] != original[g][j] {
                        var typed = original
                        typed[g].swapAt(i, j)
                        #expect(parseError(text(typed)) == .typo(groups: [g + 1]), "group \(g + 1) swap \(i + 1)↔\(j + 1)")
                        checked += 1
                    }
                }
            }
            #expect(checked > 16, "the keys exercise many swaps")
        }
    }

    @Test func swappingTwoWholeGroupsReportsBoth() {
        for key in Self.keys() {
            let original = groups(key)
            for a in 0..<16 {
                for b in (a + 1)..<16 {
                    var typed = original
                    typed.swapAt(a, b)
                    #expect(parseError(text(typed)) == .typo(groups: [a + 1, b + 1]), "groups \(a + 1)↔\(b + 1)")
                }
            }
        }
    }

    @Test func wrongLengthIsReportedWithTheDigitCount() {
        let digits = groups(RecoveryKey.generate()).flatMap { $0 }
        #expect(parseError("") == .wrongLength(digits: 0))
        #expect(parseError(String(digits.dropLast())) == .wrongLength(digits: 63))
        #expect(parseError(String(digits) + "0") == .wrongLength(digits: 65))
        #expect(parseError(String(digits.prefix(60))) == .wrongLength(digits: 60))
    }

    @Test func nonHexCharacterNamesItsGroup() {
        var typed = groups(RecoveryKey.generate())
        typed[4][2] = "g"
        #expect(parseError(text(typed)) == .notHex(group: 5, character: "g"))
        typed = groups(RecoveryKey.generate())
        typed[15][3] = "é"
        #expect(parseError(text(typed)) == .notHex(group: 16, character: "é"))
        #expect(parseError("x" + RecoveryKey.generate().singleLine) == .notHex(group: 1, character: "x"))
        #expect(parseError(RecoveryKey.generate().singleLine.replacingOccurrences(of: " ", with: "_")) == .notHex(group: 2, character: "_"))
    }

    @Test func caseSpacesDashesAndLineBreaksAreIgnored() throws {
        let key = RecoveryKey.generate()
        let expected = key.secret.copyBytes()
        let digits = groups(key).map { String($0) }
        let variants = [
            key.singleLine.uppercased(),
            digits.joined(),
            digits.joined(separator: "-"),
            "  " + digits.joined(separator: " - ") + "\n",
            digits.joined(separator: "\r"),
            digits.joined(separator: "\t"),
            String(digits.joined().enumerated().map { $0.offset % 3 == 0 ? Character($0.element.uppercased()) : $0.element }),
        ]
        for variant in variants {
            #expect(try RecoveryKey(parsing: variant).secret.copyBytes() == expected, "\(variant)")
        }
    }

    /// "\r\n" is one Character (a single grapheme cluster) in Swift, so it equals neither "\r" nor
    /// "\n": a key saved with Windows line endings must still parse.
    @Test func windowsLineBreaksAreIgnored() throws {
        let key = RecoveryKey.generate()
        let crlf = key.displayText.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(crlf.unicodeScalars.filter { $0 == "\r" }.count == 3)
        #expect(try RecoveryKey(parsing: crlf).secret.copyBytes() == key.secret.copyBytes())
        #expect(try RecoveryKey(parsing: key.displayText + "\r\n").secret.copyBytes() == key.secret.copyBytes())
    }

    @Test func errorDescriptionsNameTheGroups() {
        #expect(RecoveryKey.ParseError.typo(groups: [3]).description.contains("group 3"))
        #expect(RecoveryKey.ParseError.typo(groups: [2, 9]).description.contains("2, 9"))
        #expect(RecoveryKey.ParseError.wrongLength(digits: 12).description.contains("12"))
        #expect(RecoveryKey.ParseError.notHex(group: 4, character: "z").description.contains("group 4"))
    }
}
