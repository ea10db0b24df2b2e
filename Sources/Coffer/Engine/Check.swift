import CofferCrypto
import Glibc

/// What `check` verifies beyond the structure.
public struct CheckOptions: Sendable {
    /// Which packs `readData` reads in full.
    public enum Subset: Sendable, Equatable, CustomStringConvertible {
        /// Part `n` of `m` (1-based), chosen by pack id, as restic's `--read-data-subset n/m`:
        /// the packs whose first four id bytes (big-endian) modulo `m` equal `n - 1`. Running
        /// 1/m … m/m over time reads every pack exactly once.
        case part(n: Int, of: Int)
        /// A share in (0, 1] of the indexed packs, chosen at random (at least one pack).
        case fraction(Double)

        /// Parses `n/m` or `p%` (restic's syntax).
        public init(parsing text: String) throws(CheckError) {
            let t = text.trimmingSpaces
            if t.hasSuffix("%") {
                guard let p = Double(t.dropLast().trimmingSpaces), p.isFinite, p > 0, p <= 100 else {
                    throw .invalidSubset("\(text): a percentage must be above 0 and at most 100")
                }
                self = .fraction(p / 100)
                return
            }
            let parts = t.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let n = Int(parts[0].trimmingSpaces), let m = Int(parts[1].trimmingSpaces) else {
                throw .invalidSubset("\(text): give n/m (such as 1/10) or a percentage (such as 5%)")
            }
            self = .part(n: n, of: m)
            try validate()
        }

        public func validate() throws(CheckError) {
            switch self {
            case .part(let n, let m):
                guard m >= 1, n >= 1, n <= m else { throw .invalidSubset("\(n)/\(m): need 1 ≤ n ≤ m") }
            case .fraction(let f):
                guard f.isFinite, f > 0, f <= 1 else { throw .invalidSubset("\(f): a share must be above 0 and at most 1") }
            }
        }

        /// Whether part n/m holds this pack (fractions are chosen per run, not per pack).
        static func bucket(of pack: PackID, modulo m: Int) -> Int {
            let b = pack.bytes
            let v = UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
            return Int(UInt64(v) % UInt64(m))
        }

        public var description: String {
            switch self {
            case .part(let n, let m): return "\(n)/\(m)"
            case .fraction(let f):
                let percent = f * 100
                return percent == percent.rounded() ? "\(Int(percent))%" : "\(percent)%"
            }
        }
    }

    /// Read every selected pack in full and open every blob in it (seal, decompression, keyed id).
    public var readData = false
    /// With `readData`, only these packs; nil means all. Setting it implies `readData`.
    public var subset: Subset? = nil
    /// Take a shared lock (keeps prune from deleting objects while they are checked).
    public var lock = true
    public var lockWaitNanos: UInt64 = 0

    public init(readData: Bool = false, subset: Subset? = nil) {
        self.readData = readData
        self.subset = subset
    }

    var readsData: Bool { readData || subset != nil }
}

public enum CheckError: Error, CustomStringConvertible {
    case invalidSubset(String)
    public var description: String {
        switch self {
        case .invalidSubset(let why): return "invalid --read-data-subset \(why)"
        }
    }
}

/// One thing `check` found wrong, naming the object and what is wrong with it.
public struct CheckProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable {
        /// Data is damaged, missing or inconsistent: some snapshot may not restore.
        case error
        /// Harmless leftovers (packs no index names, left by interrupted backups; prune removes them).
        case warning
    }

    public enum Kind: String, Sendable {
        /// Storage could not read or list it (I/O error, permissions).
        case unreadable
        /// A seal does not verify: modified, truncated, swapped, or not the object its name says.
        case tampered
        /// Opened but its content is invalid.
        case malformed
        /// Named by another object but absent from storage.
        case missing
        /// A pack's stored length differs from the index's.
        case sizeMismatch
        /// A pack's sealed header and the index disagree.
        case headerMismatch
        /// Two index objects describe the same pack differently.
        case indexConflict
        /// A blob a tree uses is in no index.
        case notInIndex
        /// A blob fails to read or open.
        case damaged
        /// A pack no index names (warning).
        case unreferenced
    }

    /// The object the problem is about.
    public enum Subject: Sendable, Hashable, CustomStringConvertible {
        case keySlot(KeySlotID)
        case index(IndexID)
        case snapshot(SnapshotID)
        case pack(PackID)
        /// A blob, with the pack it is in when known.
        case blob(BlobHandle, pack: PackID?)
        /// A whole folder of the repository (when it cannot be listed).
        case folder(ObjectKind)

        public var description: String {
            switch self {
            case .keySlot(let id): return ObjectName(.keys, id.hex).description
            case .index(let id): return ObjectName(.index, id.hex).description
            case .snapshot(let id): return ObjectName(.snapshots, id.hex).description
            case .pack(let id): return "pack \(id.short)"
            case .blob(let h, let p?): return "pack \(p.short): \(h)"
            case .blob(let h, nil): return "\(h)"
            case .folder(let k): return "\(k.rawValue)/"
            }
        }
    }

    public let severity: Severity
    public let kind: Kind
    public let subject: Subject
    /// What is wrong, without the subject.
    public let message: String
    /// For blobs found through a snapshot: the first snapshot and path that use it.
    public let snapshot: SnapshotID?
    public let path: String?

    public init(_ kind: Kind, _ subject: Subject, _ message: String, snapshot: SnapshotID? = nil, path: String? = nil) {
        self.severity = kind == .unreferenced ? .warning : .error
        self.kind = kind
        self.subject = subject
        self.message = message
        self.snapshot = snapshot
        self.path = path
    }

    public var isError: Bool { severity == .error }

    public var description: String {
        var s = "\(subject): \(message)"
        if let snapshot {
            s += " (used by snapshot \(snapshot.short)"
            if let path { s += " at \(path)" }
            s += ")"
        }
        return s
    }
}

public struct CheckReport: Sendable {
    public var indexObjects = 0
    /// Distinct packs named by the index.
    public var packs = 0
    /// Pack objects in storage (indexed or not).
    public var packsStored = 0
    /// Distinct blobs named by the index.
    public var blobs = 0
    public var snapshots = 0
    /// Distinct trees walked.
    public var trees = 0
    /// Packs read in full and blobs opened by `readData`.
    public var packsRead = 0
    public var blobsRead = 0
    /// Bytes read from storage, all phases.
    public var bytesRead: UInt64 = 0
    public var problems: [CheckProblem] = []

    public init() {}

    public var errors: [CheckProblem] { problems.filter(\.isError) }
    public var warnings: [CheckProblem] { problems.filter { !$0.isError } }
    public var hasErrors: Bool { problems.contains(where: \.isError) }
}

/// How the problems a check found can be repaired, as far as a repair can: the index rebuilt
/// from the packs in storage, after which a backup of the same files stores again what was lost.
public enum CheckRepair: Int, Sendable, Comparable {
    /// Packs are missing or of the wrong size, blobs are in no index, index objects are damaged
    /// or disagree: rebuild the index from the packs the index does not describe.
    case rebuildIndex
    /// A pack's trailer or header does not open or disagrees with the index: rebuild it
    /// reading every pack's header.
    case rebuildIndexFromAllHeaders
    /// Blobs are damaged: rebuild it reading every pack in full, salvaging damaged packs.
    case rebuildIndexReadingData

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

extension CheckProblem {
    /// The repair this problem calls for; nil for problems a repair of the index cannot fix
    /// (an unreadable listing is retried, a damaged snapshot or key slot is not in the index).
    public var repair: CheckRepair? {
        switch (kind, subject) {
        case (.damaged, _): return .rebuildIndexReadingData
        case (.headerMismatch, _), (.tampered, .pack), (.malformed, .pack): return .rebuildIndexFromAllHeaders
        case (.missing, .pack), (.sizeMismatch, _), (.notInIndex, _), (.indexConflict, _), (.tampered, .index), (.malformed, .index):
            return .rebuildIndex
        case (.malformed, .blob): return .rebuildIndexReadingData
        default: return nil
        }
    }
}

extension CheckReport {
    /// The most thorough repair any problem found calls for.
    public var repair: CheckRepair? { problems.compactMap(\.repair).max() }
}

public struct CheckProgress: Sendable {
    public enum Phase: String, Sendable {
        case index, packs, snapshots, readData = "read data"
    }
    public var phase: Phase
    public var done: Int
    /// Nil when not known in advance (trees).
    public var total: Int?
    public var bytesRead: UInt64
}

extension Repository {
    /// Verifies the repository (restic's `check`): every index object opens and decodes; every
    /// indexed pack exists with its indexed length and its sealed header lists exactly the
    /// indexed blobs; every snapshot opens and every tree it reaches loads and names only blobs
    /// the index holds. With `readData`, the selected packs are read in full and every blob is
    /// opened (seal, decompression, keyed id). Damage never stops the check: each finding is a
    /// `CheckProblem` naming the object. Throws only for cancellation, a lock conflict or bad options.
    public func check(_ options: CheckOptions = CheckOptions(), progress: (@Sendable (CheckProgress) -> Void)? = nil) async throws -> CheckReport {
        try options.subset?.validate()
        if options.lock {
            return try await withLock(exclusive: false, waitNanos: options.lockWaitNanos) {
                try await runCheck(options, progress: progress)
            }
        }
        return try await runCheck(options, progress: progress)
    }

    private func runCheck(_ options: CheckOptions, progress: (@Sendable (CheckProgress) -> Void)?) async throws -> CheckReport {
        var checker = Checker(repository: self, progress: progress)
        // Order matters when backups run alongside: a backup writes packs, then index objects,
        // then the snapshot. Listing snapshots first, then index objects, then packs means every
        // snapshot seen has its index objects stored, and every indexed pack is listed.
        let snapshotNames = await checker.list(.snapshots)
        await checker.checkKeySlots()
        let (packs, index) = try await checker.loadIndex()
        let stored = await checker.list(.data)
        try await checker.checkPacks(packs, stored: stored, options: options)
        try await checker.checkSnapshots(snapshotNames ?? [], index: index)
        return checker.report
    }
}

/// One pack as the index describes it, and which index object named it first.
struct IndexedPack: Sendable {
    let pack: IndexFile.Pack
    let namedBy: IndexID
}

/// What checking one pack found.
struct PackOutcome: Sendable {
    var problems: [CheckProblem] = []
    var bytesRead: UInt64 = 0
    var blobsRead = 0
    var read = false
}

struct Checker {
    let repository: Repository
    let progress: (@Sendable (CheckProgress) -> Void)?
    var report = CheckReport()
    /// Some index object failed to load (so some packs may look unreferenced).
    var indexUnreadable = false
    /// Per-pack mismatch lines beyond this are summarised in one problem.
    static let maxMismatchesPerPack = 10

    init(repository: Repository, progress: (@Sendable (CheckProgress) -> Void)?) {
        self.repository = repository
        self.progress = progress
    }

    var storage: any Storage { repository.storage }

    mutating func add(_ p: CheckProblem) { report.problems.append(p) }

    func tell(_ phase: CheckProgress.Phase, _ done: Int, _ total: Int?) {
        progress?(CheckProgress(phase: phase, done: done, total: total, bytesRead: report.bytesRead))
    }

    /// Lists a folder; a failure is a problem and the folder counts as unknown (nil).
    mutating func list(_ kind: ObjectKind) async -> [StoredObject]? {
        do {
            return try await storage.list(kind).sorted { $0.name.name < $1.name.name }
        } catch {
            add(CheckProblem(.unreadable, .folder(kind), "listing failed: \(error)"))
            return nil
        }
    }

    /// Reads and opens a sealed object; what is wrong is returned as a (kind, message) pair.
    mutating func openSealed(_ name: ObjectName, kind: SealedKind, id: Raw256) async -> Result<[UInt8], SealedFailure> {
        let stored: [UInt8]
        do { stored = try await storage.read(name) } catch StorageError.notFound {
            return .failure(SealedFailure(kind: .missing, message: "missing"))
        } catch {
            return .failure(SealedFailure(kind: .unreadable, message: "unreadable: \(error)"))
        }
        report.bytesRead += UInt64(stored.count)
        do throws(SealedObject.Failure) {
            let payload = try SealedObject.open(stored, kind: kind, id: id, key: repository.keys.metadataSealing)
            return .success(payload)
        } catch {
            switch error {
            case .authenticationFailed:
                return .failure(SealedFailure(kind: .tampered, message: "seal does not verify (\(stored.count) bytes): modified, truncated, swapped or damaged"))
            case .unknownVersion(let v):
                return .failure(SealedFailure(kind: .malformed, message: "unknown object version \(v)"))
            case .malformed(let why):
                return .failure(SealedFailure(kind: .malformed, message: "malformed: \(why)"))
            }
        }
    }

    struct SealedFailure: Error {
        let kind: CheckProblem.Kind
        let message: String
    }

    // MARK: Key slots

    /// Every key slot must decode (opening skips a malformed one, so only check notices it).
    /// Whether a slot opens cannot be known without its credential.
    mutating func checkKeySlots() async {
        for object in await list(.keys) ?? [] {
            guard let id = KeySlotID(hex: object.name.name) else { continue }
            let bytes: [UInt8]
            do { bytes = try await storage.read(object.name) } catch StorageError.notFound {
                continue
            } catch {
                add(CheckProblem(.unreadable, .keySlot(id), "unreadable: \(error)"))
                continue
            }
            report.bytesRead += UInt64(bytes.count)
            do throws(KeySlot.Failure) { _ = try KeySlot.decode(bytes, id: id) } catch {
                switch error {
                case .malformed(let m): add(CheckProblem(.malformed, .keySlot(id), "malformed: \(m.what)"))
                default: add(CheckProblem(.malformed, .keySlot(id), "malformed: \(error)"))
                }
            }
        }
    }

    // MARK: Index

    /// Loads every index object on its own; a bad one is reported and the others still count.
    mutating func loadIndex() async throws -> (packs: [PackID: IndexedPack], index: MasterIndex) {
        var packs: [PackID: IndexedPack] = [:]
        var index = MasterIndex()
        // A pack described differently by several index objects is reported once.
        var conflicted = Set<PackID>()
        let objects = await list(.index) ?? []
        let total = objects.count
        for (i, object) in objects.enumerated() {
            try Task.checkCancellation()
            tell(.index, i, total)
            guard let id = IndexID(hex: object.name.name) else { continue }
            report.indexObjects += 1
            let file: IndexFile
            switch await openSealed(object.name, kind: .index, id: id.raw) {
            case .failure(let f):
                // Listed a moment ago and gone now: prune replaced it; nothing to check.
                if f.kind == .missing { report.indexObjects -= 1; continue }
                add(CheckProblem(f.kind, .index(id), f.message))
                indexUnreadable = true
                continue
            case .success(let payload):
                do { file = try IndexFile(decoding: payload, name: id.short) } catch {
                    add(CheckProblem(.malformed, .index(id), "malformed: \(Checker.what(error))"))
                    indexUnreadable = true
                    continue
                }
            }
            for p in file.packs {
                if let first = packs[p.id] {
                    // The same pack in two index objects is harmless (an interrupted prune
                    // leaves that) as long as they agree.
                    if first.pack != p, conflicted.insert(p.id).inserted {
                        add(CheckProblem(
                            .indexConflict, .pack(p.id),
                            "index \(first.namedBy.short) and index \(id.short) disagree about it (\(first.pack.blobs.count) blobs, \(first.pack.length) bytes against \(p.blobs.count) blobs, \(p.length) bytes)"))
                    }
                    continue
                }
                packs[p.id] = IndexedPack(pack: p, namedBy: id)
                index.add(p)
            }
        }
        tell(.index, total, total)
        report.packs = packs.count
        report.blobs = index.blobCount
        return (packs, index)
    }

    // MARK: Packs

    mutating func checkPacks(_ packs: [PackID: IndexedPack], stored: [StoredObject]?, options: CheckOptions) async throws {
        var sizes: [PackID: Int] = [:]
        for object in stored ?? [] {
            guard let id = PackID(hex: object.name.name) else { continue }
            sizes[id] = object.size
        }
        report.packsStored = sizes.count
        let ids = packs.keys.sorted()
        let toRead = options.readsData ? Self.select(ids, options.subset) : []

        // Two to eight packs at a time: reading overlaps opening.
        let width = max(2, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        var outcomes: [PackID: PackOutcome] = [:]
        let repository = self.repository
        let listed = stored != nil
        let jobs = ids.map { id in (entry: packs[id]!, size: sizes[id], read: toRead.contains(id)) }
        try await withThrowingTaskGroup(of: (PackID, PackOutcome).self) { group in
            var next = 0
            var done = 0
            while next < jobs.count || done < next {
                while next < jobs.count && next - done < width {
                    let job = jobs[next]
                    next += 1
                    group.addTask {
                        (job.entry.pack.id,
                         await Checker.checkPack(job.entry, storedSize: job.size, listed: listed, readData: job.read, repository: repository))
                    }
                }
                guard let (id, outcome) = try await group.next() else { break }
                try Task.checkCancellation()
                outcomes[id] = outcome
                report.bytesRead += outcome.bytesRead
                done += 1
                tell(toRead.isEmpty ? .packs : .readData, done, jobs.count)
            }
        }
        for id in ids {
            guard let o = outcomes[id] else { continue }
            report.problems += o.problems
            report.blobsRead += o.blobsRead
            if o.read { report.packsRead += 1 }
        }
        // When an index object could not be read, its packs land here too: say so.
        let cause = indexUnreadable
            ? "its index object may be one that could not be read, or it was left by an interrupted backup or prune"
            : "left by an interrupted backup or prune; `coffer prune` removes it"
        for id in sizes.keys.sorted() where packs[id] == nil {
            add(CheckProblem(.unreferenced, .pack(id), "not in any index (\(sizes[id]!) bytes; \(cause))"))
        }
    }

    /// The packs `readData` reads.
    static func select(_ ids: [PackID], _ subset: CheckOptions.Subset?) -> Set<PackID> {
        switch subset {
        case nil: return Set(ids)
        case .part(let n, let m)?: return Set(ids.filter { CheckOptions.Subset.bucket(of: $0, modulo: m) == n - 1 })
        case .fraction(let f)?:
            guard !ids.isEmpty else { return [] }
            let count = min(ids.count, max(1, Int((Double(ids.count) * f).rounded())))
            return Set(ids.shuffled().prefix(count))
        }
    }

    /// Checks one pack: presence, length, trailer and header against the index; with
    /// `readData`, reads it whole and opens every blob.
    static func checkPack(_ entry: IndexedPack, storedSize: Int?, listed: Bool, readData: Bool, repository: Repository) async -> PackOutcome {
        var out = PackOutcome()
        let pack = entry.pack
        let id = pack.id
        let name = ObjectName(.data, id.hex)
        let storage = repository.storage
        let key = repository.keys.metadataSealing
        func problem(_ kind: CheckProblem.Kind, _ message: String) { out.problems.append(CheckProblem(kind, .pack(id), message)) }

        var size: Int
        if let storedSize {
            size = storedSize
        } else if listed {
            problem(.missing, "missing (named by index \(entry.namedBy.short))")
            return out
        } else {
            // data/ could not be listed: ask for this one object.
            do {
                guard let s = try await storage.stat(name) else {
                    problem(.missing, "missing (named by index \(entry.namedBy.short))")
                    return out
                }
                size = s.size
            } catch {
                problem(.unreadable, "unreadable: \(error)")
                return out
            }
        }

        var whole: [UInt8]? = nil
        if readData {
            do {
                let bytes = try await storage.read(name)
                out.bytesRead += UInt64(bytes.count)
                out.read = true
                size = bytes.count  // it may have changed since the listing
                whole = bytes
            } catch StorageError.notFound {
                problem(.missing, "missing (named by index \(entry.namedBy.short))")
                return out
            } catch {
                problem(.unreadable, "unreadable: \(error)")
                return out
            }
        }
        if UInt64(size) != pack.length {
            problem(.sizeMismatch, "size \(size) bytes, the index says \(pack.length) (truncated, extended or replaced)")
        }

        /// Bytes `range` of the pack, from memory or storage; nil (and a problem) if unreadable.
        func bytes(_ range: Range<Int>) async -> [UInt8]? {
            if let whole { return Array(whole[range]) }
            do {
                let b = try await storage.read(name, range: range)
                out.bytesRead += UInt64(b.count)
                return b
            } catch {
                problem(.unreadable, "unreadable bytes \(range.lowerBound)..<\(range.upperBound): \(error)")
                return nil
            }
        }

        var headerBlobs: [PackedBlob]? = nil
        let trailerSize = PackFormat.trailerSize
        if size < trailerSize + XChaCha20Poly1305.overhead {
            problem(.malformed, "only \(size) bytes, too short to hold a header and trailer")
        } else if let trailer = await bytes((size - trailerSize)..<size) {
            var headerLength: Int? = nil
            do {
                headerLength = try PackFormat.headerLength(trailer: trailer, packID: id, key: key)
            } catch .trailerAuthenticationFailed, .tooShort {
                problem(.tampered, "trailer does not open: the pack's end was modified, truncated or extended, or it is another pack's content")
            } catch .malformed(let why) {
                problem(.malformed, "trailer is malformed: \(why)")
            } catch {
                problem(.malformed, "trailer: \(error)")
            }
            if let hl = headerLength {
                if hl < XChaCha20Poly1305.overhead + 2 || hl > size - trailerSize {
                    problem(.malformed, "trailer gives a header of \(hl) bytes, which does not fit a pack of \(size) bytes")
                } else {
                    let headerOffset = size - trailerSize - hl
                    if let sealed = await bytes(headerOffset..<(size - trailerSize)) {
                        do {
                            headerBlobs = try PackFormat.parseHeader(sealed, packID: id, headerOffset: headerOffset, key: key)
                        } catch .headerAuthenticationFailed {
                            problem(.tampered, "sealed header (bytes \(headerOffset)..<\(size - trailerSize)) does not open: modified or damaged")
                        } catch .malformed(let why) {
                            problem(.malformed, "header is malformed: \(why)")
                        } catch {
                            problem(.malformed, "header: \(error)")
                        }
                    }
                    if let hb = headerBlobs {
                        let end = hb.reduce(UInt64(0)) { $0 + UInt64($1.length) }
                        if end != UInt64(headerOffset) {
                            problem(.malformed, "the header's blobs end at byte \(end) but the header starts at \(headerOffset)")
                        }
                        for m in Self.compare(header: hb, index: pack.blobs) { problem(.headerMismatch, m) }
                    }
                }
            }
        }

        guard let whole else { return out }
        // Open every blob; when the header is unreadable, those the index promises.
        let decompressor = ZstdDecompressor()
        for blob in headerBlobs ?? pack.blobs {
            let start = Int(blob.offset), end = Int(blob.offset) + Int(blob.length)
            guard end <= whole.count else {
                out.problems.append(CheckProblem(
                    .damaged, .blob(blob.handle, pack: id), "at bytes \(start)..<\(end), beyond the pack's end at \(whole.count)"))
                continue
            }
            do {
                _ = try BlobEnvelope.open(whole[start..<end], handle: blob.handle, rawLength: Int(blob.rawLength), keys: repository.keys, decompressor: decompressor)
                out.blobsRead += 1
            } catch {
                out.problems.append(CheckProblem(.damaged, .blob(blob.handle, pack: id), Self.describe(error)))
            }
        }
        return out
    }

    static func describe(_ error: BlobEnvelope.Failure) -> String {
        switch error {
        case .authenticationFailed: return "seal does not verify (modified, or another blob's bytes)"
        case .idMismatch: return "content does not match its id"
        case .malformed(let why): return "malformed: \(why)"
        }
    }

    /// How a pack's sealed header and its index entry differ, one line each.
    static func compare(header: [PackedBlob], index: [PackedBlob]) -> [String] {
        var out: [String] = []
        if header.count != index.count { out.append("header lists \(header.count) blobs, index lists \(index.count)") }
        var inHeader: [BlobHandle: PackedBlob] = [:]
        for b in header where inHeader[b.handle] == nil { inHeader[b.handle] = b }
        var inIndex: [BlobHandle: PackedBlob] = [:]
        for b in index where inIndex[b.handle] == nil { inIndex[b.handle] = b }
        var details: [String] = []
        for b in header where inIndex[b.handle] == nil { details.append("\(b.handle) is in the header but not in the index") }
        for b in index where inHeader[b.handle] == nil { details.append("\(b.handle) is in the index but not in the header") }
        func where_(_ b: PackedBlob) -> String { "offset \(b.offset), length \(b.length), raw length \(b.rawLength)" }
        for b in header {
            guard let i = inIndex[b.handle], i != b, inHeader[b.handle] == b else { continue }
            details.append("\(b.handle): header says \(where_(b)); index says \(where_(i))")
        }
        if details.count > maxMismatchesPerPack {
            let more = details.count - maxMismatchesPerPack
            details = Array(details.prefix(maxMismatchesPerPack)) + ["and \(more) more differences between header and index"]
        }
        if out.isEmpty && details.isEmpty && header != index {
            out.append("header and index list the same blobs in a different order")
        }
        return out + details
    }

    // MARK: Snapshots and trees

    /// Loads every listed snapshot and walks its trees; each distinct tree is read once.
    mutating func checkSnapshots(_ objects: [StoredObject], index: MasterIndex) async throws {
        var seenTrees = Set<BlobID>()
        // Each missing or damaged blob is reported once, at the first place it is found.
        var reported = Set<BlobHandle>()
        let decompressor = ZstdDecompressor()
        let total = objects.count
        for (i, object) in objects.enumerated() {
            try Task.checkCancellation()
            tell(.snapshots, i, total)
            guard let id = SnapshotID(hex: object.name.name) else { continue }
            let snapshot: Snapshot
            switch await openSealed(object.name, kind: .snapshot, id: id.raw) {
            case .failure(let f):
                // Deleted since the listing (forget): simply not there any more.
                if f.kind == .missing { continue }
                add(CheckProblem(f.kind, .snapshot(id), f.message))
                report.snapshots += 1
                continue
            case .success(let payload):
                report.snapshots += 1
                do { snapshot = try Snapshot(decoding: payload, id: id) } catch {
                    add(CheckProblem(.malformed, .snapshot(id), "malformed: \(Checker.what(error))"))
                    continue
                }
            }
            // Depth first, in name order; an explicit stack, so deep trees cannot exhaust a stack.
            var stack: [(tree: BlobID, path: String)] = [(snapshot.root, "")]
            while let (treeID, path) = stack.popLast() {
                try Task.checkCancellation()
                guard seenTrees.insert(treeID).inserted else { continue }
                report.trees += 1
                let handle = BlobHandle(id: treeID, type: .tree)
                let shown = path.isEmpty ? "/" : path
                guard let entry = index.lookup(handle) else {
                    if reported.insert(handle).inserted {
                        add(CheckProblem(.notInIndex, .blob(handle, pack: nil), "not in any index", snapshot: id, path: shown))
                    }
                    continue
                }
                let bytes: [UInt8]
                do {
                    bytes = try await repository.loadBlob(handle, index: index, decompressor: decompressor)
                    report.bytesRead += UInt64(entry.length)
                } catch let e as CancellationError {
                    throw e
                } catch {
                    if reported.insert(handle).inserted {
                        add(CheckProblem(.damaged, .blob(handle, pack: entry.pack), Self.describeLoad(error), snapshot: id, path: shown))
                    }
                    continue
                }
                let tree: Tree
                do { tree = try Tree(decoding: bytes, id: treeID) } catch {
                    if reported.insert(handle).inserted {
                        add(CheckProblem(.malformed, .blob(handle, pack: entry.pack), "malformed: \(Checker.what(error))", snapshot: id, path: shown))
                    }
                    continue
                }
                var subtrees: [(tree: BlobID, path: String)] = []
                for node in tree.nodes {
                    let child = path + "/" + node.displayName
                    switch node.content {
                    case .file(_, var chunks):
                        for list in node.chunkLists ?? [] {
                            chunks += await checkedChunkList(list, index: index, decompressor: decompressor, reported: &reported, snapshot: id, path: child)
                        }
                        for chunk in chunks {
                            let h = BlobHandle(id: chunk, type: .data)
                            if !index.contains(h) && reported.insert(h).inserted {
                                add(CheckProblem(.notInIndex, .blob(h, pack: nil), "not in any index", snapshot: id, path: child))
                            }
                        }
                    case .directory(let sub):
                        subtrees.append((sub, child))
                    case .symlink:
                        break
                    }
                }
                stack += subtrees.reversed()
            }
        }
        tell(.snapshots, total, total)
    }

    /// A long file's chunk list (FORMAT.md §9.1): indexed, readable and well formed, or
    /// reported (once) and taken as empty.
    mutating func checkedChunkList(
        _ list: BlobID, index: MasterIndex, decompressor: ZstdDecompressor, reported: inout Set<BlobHandle>, snapshot: SnapshotID, path: String
    ) async -> [BlobID] {
        let handle = BlobHandle(id: list, type: .tree)
        guard let entry = index.lookup(handle) else {
            if reported.insert(handle).inserted {
                add(CheckProblem(.notInIndex, .blob(handle, pack: nil), "chunk list not in any index", snapshot: snapshot, path: path))
            }
            return []
        }
        do {
            let bytes = try await repository.loadBlob(handle, index: index, decompressor: decompressor)
            report.bytesRead += UInt64(entry.length)
            return try ChunkList.decode(bytes, id: list)
        } catch {
            if reported.insert(handle).inserted {
                let kind: CheckProblem.Kind = error is MalformedObject ? .malformed : .damaged
                add(CheckProblem(kind, .blob(handle, pack: entry.pack), "chunk list: \(Self.describeLoad(error))", snapshot: snapshot, path: path))
            }
            return []
        }
    }

    /// A decoding error's text without the "malformed" its description starts with.
    static func what(_ error: any Error) -> String {
        (error as? MalformedObject)?.what ?? "\(error)"
    }

    static func describeLoad(_ error: any Error) -> String {
        switch error {
        case RepositoryError.blobDamaged(_, _, let detail): return "damaged: \(detail)"
        case RepositoryError.missingObject(let name): return "unreadable: \(name) is missing"
        case RepositoryError.blobNotInIndex: return "not in any index"
        default: return "unreadable: \(error)"
        }
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        var chars = Substring(self)
        while let f = chars.first, f == " " || f == "\t" { chars.removeFirst() }
        while let l = chars.last, l == " " || l == "\t" { chars.removeLast() }
        return String(chars)
    }
}
