import CofferCrypto
import Glibc

/// Adds up the files and bytes under the sources while the backup runs (lstat only, on the
/// other core), so progress can show an ETA. An estimate: selection rules are not applied.
final class SizeScanner: @unchecked Sendable {
    // Counters are guarded by `lock`.
    private let lock = Lock()
    private var files: UInt64 = 0
    private var bytes: UInt64 = 0
    private var finished = false
    private var task: Task<Void, Never>? = nil

    /// (files, bytes, whether the scan is complete).
    var totals: (files: UInt64, bytes: UInt64, complete: Bool) { lock.withLock { (files, bytes, finished) } }

    func start(paths: [String]) {
        task = Task.detached(priority: .utility) { [self] in
            for p in paths { self.scan(RawPath(p)) }
            self.lock.withLock { self.finished = true }
        }
    }

    func stop() { task?.cancel() }

    private func scan(_ path: RawPath) {
        guard !Task.isCancelled else { return }
        var st = Glibc.stat()
        guard path.withCString({ lstat($0, &st) }) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            lock.withLock {
                files += 1
                bytes += UInt64(max(st.st_size, 0))
            }
        case S_IFDIR:
            guard let dir = path.withCString({ opendir($0) }) else { return }
            var names: [[UInt8]] = []
            while let e = readdir(dir) {
                let n = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if n != [46] && n != [46, 46] { names.append(n) }
            }
            closedir(dir)
            for n in names { scan(path.appending(n)) }
        default:
            break
        }
    }
}
