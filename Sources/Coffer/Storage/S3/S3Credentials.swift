import Foundation

/// An AWS access key pair, with the session token of temporary credentials. `description`
/// shows the access key id only; the secret and the token never appear in messages or logs.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "S3Credentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "none" : "<redacted>"))"
    }
    public var debugDescription: String { description }
    /// `dump()` and debuggers show the redacted description, not the fields.
    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}

/// Credentials and region for an S3 repository, and where they came from.
public struct S3Configuration: Sendable, Equatable, CustomStringConvertible {
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case environment
        /// A profile section in a shared file (~/.aws/credentials or ~/.aws/config).
        case profile(name: String, file: String)

        public var description: String {
            switch self {
            case .environment: return "environment (AWS_ACCESS_KEY_ID)"
            case .profile(let name, let file): return "profile \"\(name)\" in \(file)"
            }
        }
    }

    public static let defaultRegion = "us-east-1"

    public let credentials: S3Credentials
    public let source: Source
    /// The region set by AWS_REGION, AWS_DEFAULT_REGION or the profile's `region`; nil if none.
    public let configuredRegion: String?

    /// The region to sign for: the configured one, else us-east-1.
    public var region: String { configuredRegion ?? Self.defaultRegion }

    public var description: String {
        "S3Configuration(\(credentials), source: \(source), region: \(region)\(configuredRegion == nil ? " (default)" : ""))"
    }

    /// Resolves credentials the way the AWS CLI and restic do, from the injected environment:
    ///
    /// 1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), if either is set;
    /// 2. else the profile AWS_PROFILE (default "default") in the shared credentials file
    ///    (AWS_SHARED_CREDENTIALS_FILE, default HOME/.aws/credentials), section `[NAME]`;
    /// 3. else keys in the same profile of the config file (AWS_CONFIG_FILE, default
    ///    HOME/.aws/config), section `[profile NAME]` (or `[default]`).
    ///
    /// The region is AWS_REGION, else AWS_DEFAULT_REGION, else the profile's `region` in the
    /// config file (then in the credentials file), else us-east-1.
    ///
    /// `homeDirectory` defaults to HOME from `environment`; `readFile` returns a file's text, or
    /// nil when it does not exist.
    public static func resolve(
        environment: [String: String],
        homeDirectory: String? = nil,
        readFile: (String) throws -> String? = S3Configuration.readTextFile
    ) throws(S3CredentialsError) -> S3Configuration {
        func env(_ name: String) -> String? {
            guard let v = environment[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let home = homeDirectory ?? env("HOME")
        let profile = env("AWS_PROFILE") ?? "default"
        let credentialsPath = env("AWS_SHARED_CREDENTIALS_FILE") ?? home.map { "\($0)/.aws/credentials" }
        let configPath = env("AWS_CONFIG_FILE") ?? home.map { "\($0)/.aws/config" }

        func load(_ path: String?) throws(S3CredentialsError) -> [String: [String: String]]? {
            guard let path else { return nil }
            let text: String?
            do { text = try readFile(path) } catch { throw .unreadableFile(path: path, reason: "\(error)") }
            return text.map(parseINI)
        }
        let configFile = try load(configPath)
        let configSection = configFile.flatMap { file in
            profile == "default" ? (file["default"] ?? file["profile default"]) : file["profile \(profile)"]
        }

        let envRegion = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION")

        // 1. Environment.
        let envKey = env("AWS_ACCESS_KEY_ID")
        let envSecret = env("AWS_SECRET_ACCESS_KEY")
        if envKey != nil || envSecret != nil {
            guard let envKey else { throw .incompleteEnvironment(missing: "AWS_ACCESS_KEY_ID", present: "AWS_SECRET_ACCESS_KEY") }
            guard let envSecret else { throw .incompleteEnvironment(missing: "AWS_SECRET_ACCESS_KEY", present: "AWS_ACCESS_KEY_ID") }
            return S3Configuration(
                credentials: S3Credentials(accessKeyID: envKey, secretAccessKey: envSecret, sessionToken: env("AWS_SESSION_TOKEN")),
                source: .environment,
                configuredRegion: envRegion ?? nonEmpty(configSection?["region"]))
        }

        // 2./3. Shared files.
        let credentialsFile = try load(credentialsPath)
        var candidates: [(section: [String: String], path: String)] = []
        if let section = credentialsFile?[profile], let credentialsPath { candidates.append((section, credentialsPath)) }
        if let configSection, let configPath { candidates.append((configSection, configPath)) }
        for (section, path) in candidates {
            let key = nonEmpty(section["aws_access_key_id"])
            let secret = nonEmpty(section["aws_secret_access_key"])
            if key == nil && secret == nil { continue }
            guard let key else { throw .incompleteProfile(profile: profile, file: path, missing: "aws_access_key_id") }
            guard let secret else { throw .incompleteProfile(profile: profile, file: path, missing: "aws_secret_access_key") }
            let region = envRegion ?? nonEmpty(configSection?["region"]) ?? nonEmpty(section["region"])
            return S3Configuration(
                credentials: S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty(section["aws_session_token"])),
                source: .profile(name: profile, file: path),
                configuredRegion: region)
        }

        let searched = [credentialsPath, configPath].compactMap { $0 }
        if env("AWS_PROFILE") != nil {
            throw .profileNotFound(profile: profile, searched: searched)
        }
        throw .noCredentials(searched: searched)
    }

    /// Reads a UTF-8 file; nil when it does not exist.
    public static func readTextFile(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    /// A minimal INI reader for the AWS shared files: `[section]` headers (inner whitespace
    /// collapsed, so `[profile  x]` is `profile x`), `key = value` lines with keys lower-cased,
    /// whole-line comments starting with '#' or ';'. Later duplicates win. Indented lines
    /// (nested settings such as `s3 =` sub-keys) are ignored.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let indented = rawLine.first == " " || rawLine.first == "\t"
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard let close = line.firstIndex(of: "]") else { current = nil; continue }
                let name = line[line.index(after: line.startIndex)..<close]
                    .split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let current, !indented, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            sections[current]![key] = value
        }
        return sections
    }
}

private func nonEmpty(_ s: String?) -> String? {
    guard let s, !s.isEmpty else { return nil }
    return s
}

public enum S3CredentialsError: Error, Equatable, CustomStringConvertible {
    case incompleteEnvironment(missing: String, present: String)
    case incompleteProfile(profile: String, file: String, missing: String)
    case profileNotFound(profile: String, searched: [String])
    case noCredentials(searched: [String])
    case unreadableFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .incompleteEnvironment(let missing, let present):
            return "\(present) is set but \(missing) is not; set both (and AWS_SESSION_TOKEN for temporary credentials)"
        case .incompleteProfile(let profile, let file, let missing):
            return "profile \"\(profile)\" in \(file) has no \(missing)"
        case .profileNotFound(let profile, let searched):
            return "AWS_PROFILE=\(profile): no such profile with credentials in \(Self.list(searched))"
        case .noCredentials(let searched):
            return "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add a [default] profile to \(Self.list(searched))"
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        }
    }

    private static func list(_ paths: [String]) -> String {
        paths.isEmpty ? "~/.aws/credentials (HOME is not set)" : paths.joined(separator: " or ")
    }
}
