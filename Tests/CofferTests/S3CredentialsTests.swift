import Foundation
import Testing

@testable import Coffer

@Suite struct S3CredentialsTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    /// Resolves against an in-memory file system rooted at /home/u.
    func resolve(_ env: [String: String], files: [String: String] = [:]) throws(S3CredentialsError) -> S3Configuration {
        try S3Configuration.resolve(environment: env, homeDirectory: "/home/u", readFile: { files[$0] })
    }

    @Test func environmentCredentials() throws {
        let c = try resolve(["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": Self.secret])
        #expect(c.credentials == S3Credentials(accessKeyID: "AKIDENV", secretAccessKey: Self.secret))
        #expect(c.source == .environment)
        #expect(c.configuredRegion == nil)
        #expect(c.region == "us-east-1")
    }

    @Test func environmentWithTokenAndRegion() throws {
        let c = try resolve([
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": Self.secret, "AWS_SESSION_TOKEN": "TOKEN",
            "AWS_DEFAULT_REGION": "eu-central-1",
        ])
        #expect(c.credentials.sessionToken == "TOKEN")
        #expect(c.region == "eu-central-1")
        // AWS_REGION wins over AWS_DEFAULT_REGION, as in the AWS CLI and SDKs.
        let r = try resolve([
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": Self.secret,
            "AWS_DEFAULT_REGION": "eu-central-1", "AWS_REGION": "ap-south-1",
        ])
        #expect(r.region == "ap-south-1")
    }

    @Test func environmentWinsOverFiles() throws {
        let c = try resolve(
            ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": Self.secret, "AWS_PROFILE": "work"],
            files: ["/home/u/.aws/credentials": "[work]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n",
                    "/home/u/.aws/config": "[profile work]\nregion = sa-east-1\n"])
        #expect(c.credentials.accessKeyID == "AKIDENV")
        #expect(c.source == .environment)
        // The profile's region still applies when the environment names none.
        #expect(c.region == "sa-east-1")
    }

    @Test func halfSetEnvironmentIsAnError() {
        #expect(throws: S3CredentialsError.incompleteEnvironment(missing: "AWS_SECRET_ACCESS_KEY", present: "AWS_ACCESS_KEY_ID")) {
            try resolve(["AWS_ACCESS_KEY_ID": "AKIDENV"])
        }
        #expect(throws: S3CredentialsError.incompleteEnvironment(missing: "AWS_ACCESS_KEY_ID", present: "AWS_SECRET_ACCESS_KEY")) {
            try resolve(["AWS_SECRET_ACCESS_KEY": Self.secret, "AWS_ACCESS_KEY_ID": "  "])
        }
    }

    static let credentialsFile = """
        # comment
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = \(secret)

        [work]
        AWS_ACCESS_KEY_ID=AKIDWORK
        aws_secret_access_key=workSecret
        aws_session_token = workToken
        ; another comment

        [broken]
        aws_access_key_id = AKIDBROKEN
        """

    static let configFile = """
        [default]
        region = eu-west-2

        [profile work]
        region = us-west-2
        s3 =
          addressing_style = path

        [profile cfgonly]
        aws_access_key_id = AKIDCFG
        aws_secret_access_key = cfgSecret
        region = ca-central-1
        """

    @Test func defaultProfileFromFiles() throws {
        let c = try resolve([:], files: ["/home/u/.aws/credentials": Self.credentialsFile, "/home/u/.aws/config": Self.configFile])
        #expect(c.credentials == S3Credentials(accessKeyID: "AKIDDEFAULT", secretAccessKey: Self.secret))
        #expect(c.source == .profile(name: "default", file: "/home/u/.aws/credentials"))
        #expect(c.region == "eu-west-2")
    }

    @Test func namedProfile() throws {
        let c = try resolve(["AWS_PROFILE": "work"], files: ["/home/u/.aws/credentials": Self.credentialsFile, "/home/u/.aws/config": Self.configFile])
        #expect(c.credentials == S3Credentials(accessKeyID: "AKIDWORK", secretAccessKey: "workSecret", sessionToken: "workToken"))
        #expect(c.source == .profile(name: "work", file: "/home/u/.aws/credentials"))
        #expect(c.region == "us-west-2")
        // The environment's region wins over the profile's.
        let r = try resolve(["AWS_PROFILE": "work", "AWS_DEFAULT_REGION": "eu-north-1"],
                            files: ["/home/u/.aws/credentials": Self.credentialsFile, "/home/u/.aws/config": Self.configFile])
        #expect(r.region == "eu-north-1")
    }

    @Test func credentialsInTheConfigFile() throws {
        let c = try resolve(["AWS_PROFILE": "cfgonly"], files: ["/home/u/.aws/credentials": Self.credentialsFile, "/home/u/.aws/config": Self.configFile])
        #expect(c.credentials.accessKeyID == "AKIDCFG")
        #expect(c.source == .profile(name: "cfgonly", file: "/home/u/.aws/config"))
        #expect(c.region == "ca-central-1")
    }

    @Test func profileWithoutConfigUsesDefaultRegion() throws {
        let c = try resolve(["AWS_PROFILE": "work"], files: ["/home/u/.aws/credentials": Self.credentialsFile])
        #expect(c.credentials.accessKeyID == "AKIDWORK")
        #expect(c.configuredRegion == nil)
        #expect(c.region == "us-east-1")
    }

    @Test func fileLocationsFromTheEnvironment() throws {
        let c = try S3Configuration.resolve(
            environment: ["AWS_SHARED_CREDENTIALS_FILE": "/etc/creds", "AWS_CONFIG_FILE": "/etc/conf"],
            homeDirectory: nil,
            readFile: { ["/etc/creds": "[default]\naws_access_key_id=A\naws_secret_access_key=B\n", "/etc/conf": "[default]\nregion=r-1\n"][$0] })
        #expect(c.credentials == S3Credentials(accessKeyID: "A", secretAccessKey: "B"))
        #expect(c.region == "r-1")
        // HOME comes from the environment when no home directory is given.
        let h = try S3Configuration.resolve(
            environment: ["HOME": "/root"], readFile: { $0 == "/root/.aws/credentials" ? "[default]\naws_access_key_id=C\naws_secret_access_key=D" : nil })
        #expect(h.credentials.accessKeyID == "C")
    }

    @Test func windowsLineEndings() throws {
        let c = try resolve([:], files: ["/home/u/.aws/credentials": "[default]\r\naws_access_key_id = K\r\naws_secret_access_key = S\r\n"])
        #expect(c.credentials == S3Credentials(accessKeyID: "K", secretAccessKey: "S"))
    }

    @Test func missingCredentialsAreAClearError() {
        #expect(throws: S3CredentialsError.noCredentials(searched: ["/home/u/.aws/credentials", "/home/u/.aws/config"])) {
            try resolve([:])
        }
        #expect(
            S3CredentialsError.noCredentials(searched: ["/home/u/.aws/credentials", "/home/u/.aws/config"]).description
                == "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add a [default] profile to /home/u/.aws/credentials or /home/u/.aws/config")
        #expect(throws: S3CredentialsError.profileNotFound(profile: "nope", searched: ["/home/u/.aws/credentials", "/home/u/.aws/config"])) {
            try resolve(["AWS_PROFILE": "nope"], files: ["/home/u/.aws/credentials": Self.credentialsFile])
        }
        #expect(throws: S3CredentialsError.incompleteProfile(profile: "broken", file: "/home/u/.aws/credentials", missing: "aws_secret_access_key")) {
            try resolve(["AWS_PROFILE": "broken"], files: ["/home/u/.aws/credentials": Self.credentialsFile])
        }
        #expect(throws: S3CredentialsError.noCredentials(searched: [])) {
            try S3Configuration.resolve(environment: [:], homeDirectory: nil, readFile: { _ in nil })
        }
    }

    @Test func unreadableFileIsReported() {
        struct Denied: Error, CustomStringConvertible { var description: String { "permission denied" } }
        #expect(throws: S3CredentialsError.unreadableFile(path: "/home/u/.aws/config", reason: "permission denied")) {
            try S3Configuration.resolve(environment: [:], homeDirectory: "/home/u", readFile: { _ in throw Denied() })
        }
    }

    @Test func readsRealFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-s3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".aws"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "[default]\naws_access_key_id = REAL\naws_secret_access_key = S\n"
            .write(to: dir.appendingPathComponent(".aws/credentials"), atomically: true, encoding: .utf8)
        let c = try S3Configuration.resolve(environment: [:], homeDirectory: dir.path)
        #expect(c.credentials.accessKeyID == "REAL")
        #expect(c.region == "us-east-1")
    }

    @Test func secretsAreRedacted() throws {
        let creds = S3Credentials(accessKeyID: "AKIDVISIBLE", secretAccessKey: Self.secret, sessionToken: "SECRETTOKEN")
        let c = try resolve(["AWS_ACCESS_KEY_ID": "AKIDVISIBLE", "AWS_SECRET_ACCESS_KEY": Self.secret, "AWS_SESSION_TOKEN": "SECRETTOKEN"])
        for text in [creds.description, creds.debugDescription, "\(creds)", String(reflecting: creds), c.description, "\(c)"] {
            #expect(!text.contains(Self.secret), "\(text)")
            #expect(!text.contains("SECRETTOKEN"), "\(text)")
            #expect(text.contains("AKIDVISIBLE"))
            #expect(text.contains("<redacted>"))
        }
        #expect(S3Credentials(accessKeyID: "A", secretAccessKey: "B").description
            == "S3Credentials(accessKeyID: A, secretAccessKey: <redacted>, sessionToken: none)")
    }

    @Test func iniParsing() {
        let ini = S3Configuration.parseINI("""
            top = ignored
            [ profile   spaced ]
            Key = a = b
            empty =
            # c
            [unterminated
            lost = 1
            [profile spaced]
            more = 2
            """)
        #expect(ini["profile spaced"] == ["key": "a = b", "empty": "", "more": "2"])
        #expect(ini.count == 1)
    }
}
