import Foundation
import Glibc

@testable import Coffer

/// What unlucky storage can do to one call. Each kind has its own rate (see `FaultRates`).
enum FaultKind: String, CaseIterable, Sendable, Comparable {
    /// `write` fails and nothing is stored.
    case writeFailsBefore = "write fails, nothing stored"
    /// `write` stores the object and then fails: the answer was lost (a timeout after the
    /// server committed). The object IS there, the caller sees an error.
    case writeFailsAfter = "write stored, answer lost"
    /// `read` (whole or range) fails.
    case readFails = "read fails"
    /// `read` returns fewer bytes than the object (or range) holds. The protocol promises the
    /// whole object or range, so a caller must treat this as damage, never use the bytes.
    case shortRead = "short read"
    /// `delete` fails and the object stays.
    case deleteFailsBefore = "delete fails, object kept"
    /// `delete` removes the object and then fails (answer lost).
    case deleteFailsAfter = "delete done, answer lost"
    /// `list` fails.
    case listFails = "list fails"
    /// `stat` fails.
    case statFails = "stat fails"
    /// The call waits a little before running (it still succeeds).
    case delay = "delay"

    static func < (a: FaultKind, b: FaultKind) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// The chance, per call, of each fault kind. A listing that silently omits entries (eventual
/// consistency) is a different storage model that Coffer does not claim to survive, so it is
/// not one of the kinds: every listing here is either complete or an error.
struct FaultRates: Sendable, CustomStringConvertible {
    var rates: [FaultKind: Double] = [:]
    /// Longest injected delay, in microseconds; small so a seed stays fast.
    var maxDelayMicros: UInt64 = 3000

    subscript(kind: FaultKind) -> Double {
        get { rates[kind] ?? 0 }
        set { rates[kind] = newValue }
    }

    static let none = FaultRates()

    var description: String {
        FaultKind.allCases.filter { self[$0] > 0 }.map { "\($0.rawValue) \(self[$0])" }.joined(separator: ", ")
    }
}

/// One fault the storage injected, for the failure message.
struct InjectedFault: Sendable, CustomStringConvertible {
    let call: Int
    let kind: FaultKind
    let object: String
    /// What the harness was doing (set by `FaultyStorage.phase`).
    let phase: String

    var description: String { "call \(call) [\(phase)]: \(kind.rawValue) on \(object)" }
}

/// SplitMix64: a tiny, well-mixed PRNG. Fault decisions are a pure function of (seed, call
/// number, salt), never of system randomness, so a seed means the same faults every run as far
/// as the engine's own call order is the same (calls made concurrently may take their numbers
/// in another order; the log records what each call got).
struct SplitMix64 {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// The n-th value of the stream of `seed` salted with `salt`, without stepping through the others.
    static func unit(seed: UInt64, call: Int, salt: UInt64) -> Double {
        var g = SplitMix64(seed ^ (UInt64(call) &* 0xD1B5_4A32_D192_ED03) ^ (salt &* 0x8CB9_2BA7_2F3D_8DD7))
        _ = g.next()
        return g.unit()
    }
}

/// A `Storage` that passes every call to a real `LocalStorage` and, while `enabled`, injects
/// faults at the configured rates, deterministically from (seed, call number).
final class FaultyStorage: Storage, @unchecked Sendable {
    let base: LocalStorage
    let seed: UInt64
    private let mutex = NSLock()
    // Guarded by `mutex`.
    private var _rates: FaultRates
    private var _enabled = false
    private var _calls = 0
    private var _log: [InjectedFault] = []
    private var _phase = ""

    init(base: LocalStorage, seed: UInt64, rates: FaultRates) {
        self.base = base
        self.seed = seed
        _rates = rates
    }

    var location: String { base.location }

    /// Faults are injected only while enabled; calls are numbered either way.
    var enabled: Bool {
        get { mutex.withLock { _enabled } }
        set { mutex.withLock { _enabled = newValue } }
    }
    /// A label for the log ("backup 1", "prune", …).
    var phase: String {
        get { mutex.withLock { _phase } }
        set { mutex.withLock { _phase = newValue } }
    }
    var log: [InjectedFault] { mutex.withLock { _log } }
    var calls: Int { mutex.withLock { _calls } }

    /// Faults injected since log entry `from`, delays left out.
    func faults(since from: Int) -> [InjectedFault] { Array(log.dropFirst(from)).filter { $0.kind != .delay } }

    /// Decides what happens to one call: among `kinds` (mutually exclusive, tried in order),
    /// which one applies, if any; and how long to wait first.
    private func decide(_ kinds: [FaultKind], object: String) -> (fault: FaultKind?, delayMicros: UInt64, call: Int) {
        mutex.withLock {
            _calls += 1
            guard _enabled else { return (nil, 0, _calls) }
            let call = _calls
            var delay: UInt64 = 0
            if SplitMix64.unit(seed: seed, call: call, salt: 1) < _rates[.delay] {
                delay = 1 + UInt64(SplitMix64.unit(seed: seed, call: call, salt: 2) * Double(_rates.maxDelayMicros))
                _log.append(InjectedFault(call: call, kind: .delay, object: object, phase: _phase))
            }
            let u = SplitMix64.unit(seed: seed, call: call, salt: 3)
            var threshold = 0.0
            for kind in kinds {
                threshold += _rates[kind]
                if u < threshold {
                    _log.append(InjectedFault(call: call, kind: kind, object: object, phase: _phase))
                    return (kind, delay, call)
                }
            }
            return (nil, delay, call)
        }
    }

    /// How many of `count` bytes a short read returns (fewer, possibly none).
    private func shortLength(_ count: Int, call: Int) -> Int {
        Int(SplitMix64.unit(seed: seed, call: call, salt: 4) * Double(count))
    }

    private func pause(_ micros: UInt64) async {
        if micros > 0 { try? await Task.sleep(nanoseconds: micros * 1000) }
    }

    /// The error a failing call throws: what the local backend itself throws for an I/O error
    /// (EIO), or a timeout (ETIMEDOUT) when the call's effect happened but its answer was lost.
    private func failure(_ operation: String, _ path: String, lostAnswer: Bool = false) -> StorageError {
        .io(operation, path: path, errno: lostAnswer ? ETIMEDOUT : EIO)
    }

    private func folderPath(_ kind: ObjectKind) -> String { kind == .config ? base.root + "/config" : base.root + "/" + kind.rawValue }

    func list(_ kind: ObjectKind) async throws -> [StoredObject] {
        let (fault, delay, _) = decide([.listFails], object: "list \(kind.rawValue)/")
        await pause(delay)
        if fault == .listFails { throw failure("list", folderPath(kind)) }
        return try await base.list(kind)
    }

    func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8] {
        let (fault, delay, call) = decide([.readFails, .shortRead], object: "read \(name)" + (range.map { " \($0.lowerBound)..<\($0.upperBound)" } ?? ""))
        await pause(delay)
        switch fault {
        case .readFails: throw failure("read", base.path(name))
        case .shortRead:
            let bytes = try await base.read(name, range: range)
            return Array(bytes.prefix(shortLength(bytes.count, call: call)))
        default: return try await base.read(name, range: range)
        }
    }

    func write(_ name: ObjectName, _ bytes: [UInt8]) async throws {
        let (fault, delay, _) = decide([.writeFailsBefore, .writeFailsAfter], object: "write \(name)")
        await pause(delay)
        switch fault {
        case .writeFailsBefore: throw failure("write", base.path(name))
        case .writeFailsAfter:
            try await base.write(name, bytes)
            throw failure("write", base.path(name), lostAnswer: true)
        default: try await base.write(name, bytes)
        }
    }

    func delete(_ name: ObjectName) async throws {
        let (fault, delay, _) = decide([.deleteFailsBefore, .deleteFailsAfter], object: "delete \(name)")
        await pause(delay)
        switch fault {
        case .deleteFailsBefore: throw failure("delete", base.path(name))
        case .deleteFailsAfter:
            try await base.delete(name)
            throw failure("delete", base.path(name), lostAnswer: true)
        default: try await base.delete(name)
        }
    }

    func stat(_ name: ObjectName) async throws -> StoredObject? {
        let (fault, delay, _) = decide([.statFails], object: "stat \(name)")
        await pause(delay)
        if fault == .statFails { throw failure("stat", base.path(name)) }
        return try await base.stat(name)
    }
}
