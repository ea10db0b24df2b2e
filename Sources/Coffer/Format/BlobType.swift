/// What a blob holds; bound into its seal, so a tree cannot be served as file data.
public enum BlobType: UInt8, Sendable, Hashable, CaseIterable {
    case data = 0
    case tree = 1
}

/// A blob is named by its id and type together (the same bytes could in theory be both).
public struct BlobHandle: Hashable, Sendable, CustomStringConvertible {
    public let id: BlobID
    public let type: BlobType
    public init(id: BlobID, type: BlobType) {
        self.id = id
        self.type = type
    }
    public var description: String { "\(type == .data ? "data" : "tree") blob \(id.short)" }
}
