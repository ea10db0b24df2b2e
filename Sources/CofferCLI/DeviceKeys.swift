import Coffer
import CofferCrypto
import Foundation
import Glibc

/// The configuration folder: `$COFFER_CONFIG_DIR`, else `$XDG_CONFIG_HOME/coffer`, else
/// `~/.config/coffer`; nil when none can be named.
enum ConfigFolder {
    static func path() -> String? {
        if let dir = Environment.value("COFFER_CONFIG_DIR") { return dir }
        if let xdg = Environment.value("XDG_CONFIG_HOME") { return xdg + "/coffer" }
        if let home = Environment.value("HOME") { return home + "/.config/coffer" }
        return nil
    }

    /// Writes a file only its user may read (0600, its folder made 0700): a temporary file in
    /// the same folder, fsynced, then put in place — renamed over an old one when `replacing`,
    /// else linked, which refuses an existing file — and the folder fsynced. A crash leaves
    /// the old file or the new one, never part of one.
    static func writePrivateFile(_ path: String, _ bytes: UnsafeRawBufferPointer, replacing: Bool) throws {
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CLIError.usage("cannot create \(folder): \(error.localizedDescription)")
        }
        let temporary = folder + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw failure("create", temporary) }
        var placed = false
        defer {
            close(fd)
            if !placed { unlink(temporary) }
        }
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("write", temporary) }
            written += n
        }
        guard fsync(fd) == 0 else { throw failure("fsync", temporary) }
        if replacing {
            guard rename(temporary, path) == 0 else { throw failure("rename", path) }
        } else {
            guard link(temporary, path) == 0 else { throw failure("save", path) }
            unlink(temporary)
        }
        placed = true
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    private static func failure(_ operation: String, _ at: String) -> CLIError {
        CLIError.usage("cannot \(operation) \(at): \(String(cString: strerror(errno)))")
    }
}

/// This machine's device keys (FORMAT.md §5.4): one file per repository,
/// `device-keys/<repository id>` under the configuration folder, mode 0600 in a 0700 folder.
/// A command given no password, recovery key or password file opens with the key whose slot
/// the repository has.
struct DeviceKeyFolder {
    let path: String

    static func standard() -> DeviceKeyFolder? { ConfigFolder.path().map { DeviceKeyFolder(path: $0 + "/device-keys") } }

    func file(for repositoryID: String) -> String { path + "/" + repositoryID }

    /// Writes the key for a repository; refuses to replace one (its slot would be orphaned).
    func save(_ key: DeviceKey, repositoryID: String) throws -> String {
        let final = file(for: repositoryID)
        if access(final, F_OK) == 0 {
            throw CLIError.usage("\(final) already holds this machine's device key for the repository; remove its slot first (`coffer key list`, `coffer key remove ID`)")
        }
        try key.fileText().withUnsafeBytes { try ConfigFolder.writePrivateFile(final, $0, replacing: false) }
        return final
    }

    /// Every readable key file, with its path. A file that is not a device key, or that others
    /// may read, is skipped with a warning.
    func all() -> [(path: String, key: DeviceKey)] {
        // A folder someone else may write to could have its files swapped: not used at all.
        var folder = stat()
        guard lstat(path, &folder) == 0 else { return [] }
        guard (folder.st_mode & S_IFMT) == S_IFDIR, folder.st_uid == geteuid(), folder.st_mode & 0o022 == 0 else {
            Output.warning("\(path) is not a folder of yours that only you can write to: its device keys are not used")
            return []
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return [] }
        var out: [(String, DeviceKey)] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let file = path + "/" + name
            var st = stat()
            guard lstat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if st.st_mode & 0o077 != 0 {
                Output.warning("\(file) can be read by other users: not used (chmod 600 it, or remove it and add a new device key)")
                continue
            }
            do {
                out.append((file, try DeviceKey(fileText: try SecretFile.readPrivate(file))))
            } catch {
                Output.warning("\(file): \(error)")
            }
        }
        return out
    }

    /// The keys this machine holds for any of `slots` (normally one), with their files.
    func keys(forAnyOf slots: Set<KeySlotID>) -> [(path: String, key: DeviceKey)] {
        all().filter { slots.contains($0.key.slotID) }
    }

    /// Removes the local file of a device slot, if this machine has it; returns its path.
    func remove(slot: KeySlotID) -> String? {
        guard let found = all().first(where: { $0.key.slotID == slot }) else { return nil }
        return unlink(found.path) == 0 ? found.path : nil
    }
}
