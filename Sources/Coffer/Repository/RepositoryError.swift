/// Everything that can go wrong at the repository layer, each case naming what a person needs.
public enum RepositoryError: Error, CustomStringConvertible {
    case noRepository(location: String)
    case alreadyInitialized(location: String)
    case wrongCredential
    case noUsableKeySlot
    case lastKeySlot
    case keySlotNotFound(String)
    case ambiguousKeySlot(String)
    case unsupportedFormat(UInt32)
    /// An object failed authentication: tampered, truncated, swapped or sealed under another key.
    case tampered(ObjectName, detail: String)
    case malformed(ObjectName, detail: String)
    case missingObject(ObjectName)
    case blobNotInIndex(BlobHandle)
    case blobDamaged(BlobHandle, pack: PackID, detail: String)
    case snapshotNotFound(String)
    case ambiguousSnapshot(String, matches: [SnapshotID])
    case noSnapshots
    case locked(String)
    /// The lock may have looked stale to another process, or its object is gone: `before`
    /// names what was not done.
    case lockLost(String, before: String)
    case treeTooLarge(String)
    case vaultSlotNotWritten(String, detail: String)
    case notOpenedByVault
    case vaultAccountNotFound(String, known: [String])
    case vaultAccountAmbiguous([String])
    case vaultKeyDoesNotFit(String)
    case vaultUnreachable(VaultClientError)
    case vaultPasswordNotChanged(VaultClientError)
    /// The vault slot names a vault this machine does not trust; nothing was sent to it.
    case vaultNotTrusted(VaultAddress, triedPasswordSlots: Bool)
    /// Nothing opened, and these slots (named, with the reason) were not tried.
    /// `triedAny`: whether some slot was tried with the credential and refused it. When none
    /// was, nothing says the password is wrong: every candidate was damaged or too costly.
    case keySlotsNotTried([String], triedAny: Bool)

    public var description: String {
        switch self {
        case .noRepository(let l): return "no repository at \(l) (run `coffer init` first, or check --repo)"
        case .alreadyInitialized(let l): return "\(l) already holds a repository; refusing to overwrite it"
        case .wrongCredential: return "wrong password or key"
        case .noUsableKeySlot: return "the repository has no key slot that this kind of credential can open"
        case .lastKeySlot: return "refusing to remove the last key slot: the repository would become unreadable"
        case .keySlotNotFound(let p): return "no key slot matches \(p)"
        case .ambiguousKeySlot(let p): return "\(p) matches more than one key slot; give more digits"
        case .unsupportedFormat(let v): return "repository format \(v) is newer than this coffer understands"
        case .tampered(let n, let d): return "\(n) failed authentication (\(d)): it was modified, truncated, swapped or damaged"
        case .malformed(let n, let d): return "\(n) is malformed: \(d)"
        case .missingObject(let n): return "\(n) is missing from the repository"
        case .blobNotInIndex(let h): return "\(h) is not in any index"
        case .blobDamaged(let h, let p, let d): return "\(h) in pack \(p.short) is damaged: \(d)"
        case .snapshotNotFound(let s): return "no snapshot matches \(s)"
        case .ambiguousSnapshot(let s, let m): return "\(s) matches \(m.count) snapshots; give more digits"
        case .noSnapshots: return "the repository has no snapshots"
        case .locked(let why): return why
        case .lockLost(let why, let before): return "the repository lock was lost (\(why)); stopped before \(before)"
        case .vaultSlotNotWritten(let account, let detail):
            return "the vault registered \(account), but the key slot could not be written (\(detail)); that account is unused now: run the command again with another --account name"
        case .notOpenedByVault: return "this repository was not opened through a key vault login"
        case .vaultAccountNotFound(let name, let known):
            return "no vault slot for account \(name)" + (known.isEmpty ? "" : "; the vault slots are for: \(known.joined(separator: "; "))")
        case .vaultAccountAmbiguous(let known):
            return "the repository has slots for several vault accounts (\(known.joined(separator: "; "))); choose one with --vault-account NAME (a wrong password costs every account tried an attempt)"
        case .vaultUnreachable(let error):
            return "\(error); try again when it is back, or open the repository with its recovery key (--recovery-key-file)"
        case .vaultPasswordNotChanged(let error):
            return "the vault password was NOT changed (the old one still works): \(error)"
        case .vaultKeyDoesNotFit(let account):
            return "the login to vault \(account) succeeded, but the key it returned opens none of this repository's slots: the account belongs to another repository, or a slot was altered"
        case .vaultNotTrusted(let address, let triedPasswordSlots):
            return (triedPasswordSlots ? "the password opened none of the password slots, and " : "")
                + "the key vault at \(address.url) (named by a vault slot for account \"\(address.account)\") is not one this machine trusts, so the password was not sent to it: whoever can write to the storage can add a vault slot naming any server"
        case .keySlotsNotTried(let slots, let triedAny):
            let list = slots.joined(separator: "; ")
            return triedAny
                ? "wrong password or key for the key slots tried; not tried: \(list)"
                : "no key slot could be tried with this credential, so nothing says it is wrong: \(list); open the repository with another credential (its recovery key, --recovery-key-file), then `coffer key list` and `coffer check`"
        case .treeTooLarge(let path): return "\(path): the list of its contents is too large for one tree blob (4 GiB) in repository format 1"
        }
    }
}
