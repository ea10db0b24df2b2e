// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Coffer",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Coffer", targets: ["Coffer"]),
        .executable(name: "coffer", targets: ["CofferCLI"]),
        .executable(name: "coffer-vault", targets: ["CofferVaultServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // HTTP for the S3 backend (Storage/S3); NIO for the byte buffers and headers it uses.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTP server for the key vault (coffer-vault).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // TLS: coffer-vault's HTTPS (through HummingbirdTLS), and the CA a vault client trusts.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // C libraries from Debian: libsodium-dev, libzstd-dev, libb2-dev, libsqlite3-dev.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBlake2", pkgConfig: "libb2", providers: [.apt(["libb2-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Keyed BLAKE2b of four chunks at once in AVX2 lanes (libsodium for one at a time): the
        // one C file of the project, because Swift has no portable 256-bit vector intrinsics.
        .target(name: "CBlake2Lanes", dependencies: ["CSodium"]),
        // glibc's <malloc.h>, for the command's allocator setting (MemoryTuning).
        .systemLibrary(name: "CMalloc"),

        // The only module that touches C: typed wrappers over the four libraries (SQLite for
        // consistent database snapshots and the vault's state), and OPAQUE on libsodium.
        // swift-crypto (already built for the HTTP client's certificates) only for SHA-256:
        // BoringSSL's uses the CPU's SHA extensions, 4× libsodium's here (S3 payload hashes).
        .target(
            name: "CofferCrypto",
            dependencies: ["CSodium", "CZstd", "CBlake2", "CBlake2Lanes", "CSQLite", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // Repository format, storage, keys and the backup/restore engine.
        .target(
            name: "Coffer",
            dependencies: [
                "CofferCrypto",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        // The `coffer` command: parses, delegates to Coffer, maps errors to exit codes.
        .executableTarget(
            name: "CofferCLI",
            dependencies: ["Coffer", "CMalloc", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        // The key vault: OPAQUE logins with attempt counters over SQLite, served by Hummingbird.
        .target(
            name: "CofferVault",
            dependencies: [
                "CofferCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                // SocketAddress: the client's address, for the login rate limit.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "CofferVaultServer",
            dependencies: ["CofferVault", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),

        .testTarget(name: "CofferCryptoTests", dependencies: ["CofferCrypto"], swiftSettings: strict),
        .testTarget(
            name: "CofferTests",
            dependencies: [
                "Coffer", "CofferCrypto", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // The end-to-end tests run the built `coffer` and `coffer-vault` binaries.
        .testTarget(name: "CofferCLITests", dependencies: ["CofferCLI", "CofferVaultServer", "Coffer"], swiftSettings: strict),
        .testTarget(
            name: "CofferVaultTests",
            dependencies: [
                // Coffer: the client's side of a legacy account's re-registration, against a live vault.
                "CofferVault", "CofferCrypto", "Coffer", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                // A real HTTPS client for the TLS test, trusting a certificate made for the test.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
    ]
)
