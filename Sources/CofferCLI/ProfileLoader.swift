import Coffer
import Foundation

/// Reads a backup profile and carries out its parts that are not the backup itself.
enum ProfileLoader {
    static func load(_ path: String) throws -> BackupProfile {
        let data = try Data(contentsOf: URL(fileURLWithPath: expandHome(path)))
        do { return try JSONDecoder().decode(BackupProfile.self, from: data) } catch let error as DecodingError {
            throw CLIError.usage("profile \(path): \(describe(error))")
        }
    }

    /// The profile's repository and password file, where flags and environment give none.
    static func fillIn(_ options: inout RepositoryOptions, from profile: BackupProfile) {
        if options.repo == nil && Environment.value("COFFER_REPOSITORY") == nil { options.repo = profile.repository.map(expandHome) }
        if options.passwordFile == nil && Environment.value("COFFER_PASSWORD_FILE") == nil && Environment.value("COFFER_PASSWORD") == nil {
            options.passwordFile = profile.passwordFile.map(expandHome)
        }
    }

    static func applyRetention(_ policy: RetentionPolicy, prune: Bool, repo: Repository, options: RepositoryOptions) async throws {
        let result = try await repo.forget(policy: policy, timeZone: .current)
        if !options.quiet && !options.json { print("retention (\(policy)): forgot \(result.removed.count) snapshots") }
        if prune && !result.removed.isEmpty {
            let report = try await PruneRunner.run(repo, dryRun: false, quiet: options.quiet || options.json)
            PruneRunner.print(report, json: options.json, quiet: options.quiet)
        }
    }

    static func expandHome(_ path: String) -> String {
        guard path == "~" || path.hasPrefix("~/"), let home = Environment.value("HOME") else { return path }
        return home + path.dropFirst()
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        case .dataCorrupted(let c): return "not valid JSON: \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
