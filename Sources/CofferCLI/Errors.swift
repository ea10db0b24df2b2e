import ArgumentParser
import Coffer
import CofferCrypto
import Glibc

enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    case partial(String)
    var description: String {
        switch self {
        case .usage(let m), .partial(let m): return m
        }
    }
}

/// Maps every error to a message and one of restic's exit codes, in one place.
enum ErrorReporting {
    static func exitCode(for error: any Error) -> Int32 {
        switch error {
        case RepositoryError.noRepository: return 10
        case RepositoryError.wrongCredential, RepositoryError.noUsableKeySlot: return 12
        // Only a credential that some slot refused is a wrong one; damaged slots are not.
        case RepositoryError.keySlotsNotTried(_, let triedAny): return triedAny ? 12 : 1
        // Lost after it was held: to a script the same as never got it (restic's 11).
        case RepositoryError.locked, RepositoryError.lockLost: return 11
        case is RecoveryKey.ParseError: return 12
        case VaultClientError.wrongPassword, VaultClientError.locked: return 12
        case CLIError.partial: return 3
        default: return 1
        }
    }

    static func message(for error: any Error) -> String {
        switch error {
        case is CancellationError: return "interrupted; the repository is unchanged except for unreferenced data"
        case let e as KeySlot.Failure:
            switch e {
            case .kdf(let f): return "key derivation failed (\(f)): not enough memory?"
            case .costOutOfRange: return "\(e); choose smaller --argon2-memory-mib or --argon2-iterations"
            default: return "wrong password or key"
            }
        case RepositoryError.vaultNotTrusted(let address, _):
            return "\(error). If it is your vault, trust it once with --trust-vault \(address.url) (or COFFER_TRUST_VAULT), or answer yes when coffer asks on a terminal; otherwise open the repository with its recovery key (--recovery-key-file)"
        case let e as PruneError: return "\(e); \(advice(for: e))"
        case let e as RepairError:
            if case .deleteFailed = e { return "\(e): run `coffer repair index` again to finish" }
            return "\(e)"
        default: return "\(error)"
        }
    }

    /// What to type after prune refused or stopped.
    static func advice(for error: PruneError) -> String {
        let backUpAgain = "then back up the same files again so that what is still on disk is stored again (`coffer check` names the snapshots that use what is lost)"
        switch error {
        case .missingBlobs, .snapshotUnreadable: return "run `coffer repair index`, \(backUpAgain)"
        case .blobDamaged: return "run `coffer repair index --read-data`, \(backUpAgain)"
        case .deleteFailed: return "run `coffer prune` again to finish"
        }
    }

    /// Runs a command body, printing errors as `coffer: …` and exiting with the mapped code.
    static func run(_ body: () async throws -> Void) async throws {
        do { try await body() } catch let e as ExitCode {
            throw e
        } catch let e as CleanExit {
            throw e
        } catch {
            Output.error(message(for: error))
            throw ExitCode(exitCode(for: error))
        }
    }
}
