/// The kinds of objects a repository keeps; each kind is a folder (FORMAT.md §1).
public enum ObjectKind: String, CaseIterable, Sendable {
    case config
    case keys
    case data
    case index
    case snapshots
    case locks
}

/// A stored object's name: its kind and, except for `config`, 64 hex digits.
public struct ObjectName: Hashable, Sendable, CustomStringConvertible {
    public let kind: ObjectKind
    public let name: String

    public init(_ kind: ObjectKind, _ name: String) {
        self.kind = kind
        self.name = name
    }
    public static let config = ObjectName(.config, "config")

    public var description: String { kind == .config ? "config" : "\(kind.rawValue)/\(name)" }

    /// The object's path under the repository root, the same for every backend (FORMAT.md §1),
    /// so a repository copied between a folder and a bucket stays a repository: `config`,
    /// `data/ab/ab12…` (packs fan out by their first two hex digits), `index/…`.
    public var relativePath: String {
        switch kind {
        case .config: return "config"
        case .data: return "data/\(name.prefix(2))/\(name)"
        default: return "\(kind.rawValue)/\(name)"
        }
    }

    /// The name stored at `relativePath` under folder `kind`, or nil for anything that is not
    /// an object of that kind (temporary files, stray keys).
    public init?(kind: ObjectKind, relativePath rest: Substring) {
        var name = rest
        if kind == .data {
            guard rest.utf8.count == 67, rest.dropFirst(2).first == "/" else { return nil }
            name = rest.dropFirst(3)
            guard name.prefix(2) == rest.prefix(2) else { return nil }
        }
        guard name.utf8.count == 64, Hex.decode(String(name)) != nil else { return nil }
        self.init(kind, String(name))
    }
}

public struct StoredObject: Sendable, Equatable {
    public let name: ObjectName
    public let size: Int
}

public enum StorageError: Error, CustomStringConvertible {
    case notFound(ObjectName)
    case alreadyExists(ObjectName)
    /// A range read past the object's end: the object is shorter than recorded.
    case truncated(ObjectName, expected: Int, actual: Int)
    case io(String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .notFound(let n): return "\(n) does not exist"
        case .alreadyExists(let n): return "\(n) already exists"
        case .truncated(let n, let e, let a): return "\(n) is truncated: needed \(e) bytes, found \(a)"
        case .io(let op, let path, let e): return "\(op) \(path): \(FileError(errno: e, operation: "").description.dropFirst(2))"
        }
    }
}

/// The storage protocol every backend implements (local directory now, S3 later). Storage is
/// dumb: it stores named, immutable objects; packing, sealing and indexing live above it.
public protocol Storage: Sendable {
    /// Where the repository lives, for messages.
    var location: String { get }
    /// All objects of a kind with their sizes; unordered.
    func list(_ kind: ObjectKind) async throws -> [StoredObject]
    /// An object's bytes, or the bytes in `range` of it.
    func read(_ name: ObjectName, range: Range<Int>?) async throws -> [UInt8]
    /// Stores a whole object atomically: it is either absent or complete, never partial.
    func write(_ name: ObjectName, _ bytes: [UInt8]) async throws
    func delete(_ name: ObjectName) async throws
    /// Size of an object, nil if it does not exist.
    func stat(_ name: ObjectName) async throws -> StoredObject?
    /// Network traffic so far, for backends that have any.
    var meter: TransferMeter? { get }
}

extension Storage {
    /// Network traffic, for backends that have any.
    public var meter: TransferMeter? { nil }

    public func read(_ name: ObjectName) async throws -> [UInt8] { try await read(name, range: nil) }
}

/// Runs `body` in a task that the caller's cancellation does not reach. For cleanup that must
/// still happen after Ctrl-C (removing a lock, prune's deletions once the new index is written):
/// a remote backend sends no request from a cancelled task.
public func withoutCancellation<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await Task.detached(operation: body).value
}

public func withoutCancellation<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task.detached(operation: body).value
}
