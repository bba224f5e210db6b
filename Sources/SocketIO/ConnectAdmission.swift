/// A namespace CONNECT as the server sees it before it acts on it: before the recovery claim
/// reaches the adapter (in a cluster, the broker) and before any middleware runs.
public struct ConnectAttempt: Sendable, Hashable {
    public var namespace: String
    /// The client address of the Engine.IO handshake request (`""` when unknown).
    public var address: String
    /// The CONNECT carries a well-formed `pid` and `offset`, and recovery is on: accepting it
    /// costs a session lookup (a stream round trip in a cluster).
    public var claimsRecovery: Bool

    public init(namespace: String, address: String, claimsRecovery: Bool) {
        self.namespace = namespace
        self.address = address
        self.claimsRecovery = claimsRecovery
    }
}

/// What `SocketIOServerConfiguration.connectAdmission` decides for one CONNECT.
public enum ConnectAdmission: Sendable, Hashable {
    case accept
    /// Connect as a new session: the recovery claim is ignored (it is not tried at all).
    case acceptWithoutRecovery
    /// Answered with CONNECT_ERROR carrying this error; the Engine.IO connection stays.
    case refuse(ConnectError)
}
