import Foundation
import Glibc
import Testing

/// The side-by-side runners in Benchmarks/ at a tiny scale (8 MiB, debug build), so a change
/// that breaks them fails the tests; the real runs take minutes and stay out of CI.
@Suite(.serialized, .enabled(if: BenchmarkSmoke.enabled)) struct BenchmarkSmokeTests {
    @Test func compareRunsEveryToolAndReportsRatios() throws {
        let box = try Sandbox()
        let out = box.root.path + "/compare.json"
        let r = try BenchmarkSmoke.run(["Benchmarks/compare.sh", "--scale", "0.1", "--s3", "--tmp", box.root.path, "--out", out], box: box)
        let json = try BenchmarkSmoke.lastJSON(r)
        let rows = try #require(json["results"] as? [[String: Any]])
        let tools = Set(rows.compactMap { $0["tool"] as? String })
        #expect(tools == ["coffer", "restic", "borg", "coffer-s3", "restic-s3"], "\(tools)")
        #expect(rows.count == 5 * 6, "five tools, six phases (the sixth: restore made durable)")
        let ratios = try #require(json["ratios"] as? [String: [String: Any]])
        #expect(ratios["backup1"]?["seconds_vs_restic"] is NSNumber)
        let s3 = try #require(json["s3"] as? [String: Any])
        let traffic = try #require(s3["traffic_backup2"] as? [String: Any], "\(s3)")
        #expect((jsonInt(traffic["bytesDownloaded"]) ?? .max) < 64 << 10)
        #expect(r.err.contains("coffer restore verified") && r.err.contains("restic-s3 restore verified"), "\(r.err.suffix(2000))")
        try BenchmarkSmoke.expectChart(box.root.path + "/compare.svg", naming: ["coffer", "restic", "borg", "coffer-s3", "first backup", "restore"])
    }

    @Test func historyRunsDaysRetentionAndRestore() throws {
        let box = try Sandbox()
        let out = box.root.path + "/history.json"
        let r = try BenchmarkSmoke.run(["Benchmarks/history.sh", "--scale", "0.1", "--days", "2", "--tmp", box.root.path, "--out", out], box: box)
        let json = try BenchmarkSmoke.lastJSON(r)
        #expect((json["per_day"] as? [Any])?.count == 3)
        let restore = try #require(json["restore"] as? [String: [String: Any]])
        for tool in ["coffer", "restic", "borg"] { #expect(restore[tool]?["verified"] as? Bool == true, "\(tool): \(restore)") }
        #expect(r.out.contains("avg daily bytes added"))
        try BenchmarkSmoke.expectChart(box.root.path + "/history.svg", naming: ["coffer", "restic", "borg", "ideal", "Bytes added per day"])
    }
}

enum BenchmarkSmoke {
    /// The runner's chart: an SVG document with a bar or line for each named series.
    static func expectChart(_ path: String, naming labels: [String]) throws {
        let svg = try String(contentsOfFile: path, encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"), "\(svg.prefix(200))")
        for label in labels { #expect(svg.contains(">\(label)<") || svg.contains(label), "\(label) missing from \(path)") }
        #expect(svg.contains("<rect") || svg.contains("<polyline"))
    }

    static let root: String = {
        var dir = (#filePath as NSString).deletingLastPathComponent
        for _ in 0..<2 { dir = (dir as NSString).deletingLastPathComponent }
        return dir
    }()

    static func onPath(_ tool: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { access("\($0)/\(tool)", X_OK) == 0 }
    }

    /// With restic, borg, zstd, GNU time and rclone installed (Scripts/test.sh installs them);
    /// under CI a missing tool fails the tests instead of skipping them.
    static var enabled: Bool {
        let present = ["restic", "borg", "zstd"].allSatisfy(onPath) && access("/usr/bin/time", X_OK) == 0 && S3TestEnvironment.rclone != nil
        if present || !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty { return true }
        print("benchmark smoke tests skipped: restic, borg, zstd, time or rclone missing (Scripts/test.sh installs them)")
        return false
    }

    static func run(_ arguments: [String], box: Sandbox) throws -> RunResult {
        let binary = try CofferBinary.require()
        var env = Sandbox.environment([:])
        if let rclone = S3TestEnvironment.rclone { env["PATH"] = (rclone as NSString).deletingLastPathComponent + ":" + (env["PATH"] ?? "") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments + ["--coffer", binary]
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        process.environment = env
        let out = box.root.appendingPathComponent(".out/bench-stdout"), err = box.root.appendingPathComponent(".out/bench-stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(600)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { stop(process) }
        process.waitUntilExit()
        let r = RunResult(
            arguments: arguments, reason: process.terminationReason, status: process.terminationStatus,
            stdout: (try? Data(contentsOf: out)) ?? Data(), stderr: (try? Data(contentsOf: err)) ?? Data())
        try #require(r.succeeded, "\(arguments.joined(separator: " ")) failed: \(r.diagnostics)")
        return r
    }

    static func lastJSON(_ r: RunResult) throws -> [String: Any] {
        let line = try #require(r.out.split(separator: "\n").last, "no output")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "the last line is not a JSON object: \(line.prefix(300))")
    }
}
