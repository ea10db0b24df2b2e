// swift-tools-version: 6.1
// Micro benchmarks of Coffer's hot paths. A separate package so that the main package and its
// CI never fetch or build the benchmark harness. Run with `swift package benchmark` in this
// folder (see README.md).
import PackageDescription

let package = Package(
    name: "CofferBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Named, so the product reference below does not depend on the checkout's folder name
        // (a path dependency's identity is otherwise its last path component).
        .package(name: "Coffer", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBench",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Coffer", package: "Coffer"),
            ],
            path: "CoreBench",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
