import Hummingbird
import NIOCore

/// Hummingbird's basic context plus the client's address, which the login rate limit is keyed
/// by. Taken from the connection itself, never from a header a client could write.
public struct VaultRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// nil in HummingbirdTesting's `.router` mode, whose channel has no peer.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
