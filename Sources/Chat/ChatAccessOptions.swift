import ArgumentParser
import ChatCore
import Foundation
import SocketIO

/// Sign-in and admin options of `chat` (docs/SECURITY.md, "Sign-in tokens").
struct ChatAccessOptions: ParsableArguments {
    @Option(name: .customLong("auth-jwt-secret"), help: "HS256 secret: CONNECT then requires auth.token, and names come from it (env AUTH_JWT_SECRET).")
    var jwtSecret: String = Env.string("AUTH_JWT_SECRET") ?? ""

    @Option(name: .customLong("auth-jwt-keys"), help: "A JWKS file of RS256/ES256 public keys: CONNECT then requires auth.token (env AUTH_JWT_KEYS).")
    var jwtKeys: String = Env.string("AUTH_JWT_KEYS") ?? ""

    @Option(name: .customLong("admin-token"), help: "Token that opens the /admin page and namespace; empty = only signed-in admins (env ADMIN_TOKEN).")
    var adminToken: String = Env.string("ADMIN_TOKEN") ?? ""

    @Flag(name: .customLong("admin-read-only"), help: "The admin page shows the cluster but cannot act on it (env ADMIN_READ_ONLY=1).")
    var adminReadOnlyFlag = false
    /// A Bool flag cannot default to true (ArgumentParser refuses it): the variable is read here.
    var adminReadOnly: Bool { adminReadOnlyFlag || Env.string("ADMIN_READ_ONLY") == "1" }

    /// Reads the key material; a bad file or both options at once stop the node at start.
    func load(limits: ChatLimits) async throws -> ChatAccess {
        if !jwtSecret.isEmpty && !jwtKeys.isEmpty {
            throw ValidationError("give AUTH_JWT_SECRET or AUTH_JWT_KEYS, not both")
        }
        var authenticator: ChatAuthenticator?
        if !jwtSecret.isEmpty {
            guard jwtSecret.utf8.count >= 32 else { throw ValidationError("AUTH_JWT_SECRET must be at least 32 bytes") }
            authenticator = await ChatAuthenticator.hs256(secret: jwtSecret, limits: limits)
        } else if !jwtKeys.isEmpty {
            guard let data = FileManager.default.contents(atPath: jwtKeys), data.count <= 1 << 20,
                  let json = String(data: data, encoding: .utf8)
            else { throw ValidationError("AUTH_JWT_KEYS: cannot read \(jwtKeys) (a JWKS file of at most 1 MB)") }
            do {
                authenticator = try await ChatAuthenticator.jwks(json: json, limits: limits)
            } catch {
                throw ValidationError("AUTH_JWT_KEYS: \(jwtKeys) is not a usable JWKS (\(error))")
            }
        }
        return ChatAccess(
            authenticator: authenticator, adminToken: adminToken.isEmpty ? nil : adminToken, adminReadOnly: adminReadOnly
        )
    }
}

/// Who may connect and who may administer, as loaded at start.
struct ChatAccess: Sendable {
    var authenticator: ChatAuthenticator?
    var adminToken: String?
    var adminReadOnly: Bool = false

    static let open = ChatAccess(authenticator: nil, adminToken: nil)

    /// Names come from tokens (and `set-name` is refused) when sign-in is on.
    var namesFromTokens: Bool { authenticator != nil }

    /// The default namespace's guard. It also runs for a recovered session (the chat sets
    /// `skipMiddlewares: false`): a token that expired or was replaced while the client was
    /// away is refused like on a first CONNECT, and the name is taken from the token again.
    func installSignIn(on io: SocketIOServer) {
        guard let authenticator else { return }
        io.use { socket in
            switch await authenticator.verify(socket.handshake.auth["token"]) {
            case .failure(let failure):
                throw failure.connectError
            case .success(let identity):
                var data = socket.data.objectValue ?? JSONObject()
                data["name"] = .string(identity.name)
                socket.data = .object(data)
            }
        }
    }

    /// The admin namespace's guard: ADMIN_TOKEN (compared in constant time), or a sign-in
    /// token with `"admin": true`.
    func admitAdmin(_ token: JSONValue?) async -> Result<Void, ChatAuthFailure> {
        guard adminToken != nil || authenticator != nil else { return .failure(.adminDisabled) }
        if let adminToken, let given = token?.stringValue, Self.constantTimeEqual(given, adminToken) {
            return .success(())
        }
        guard let authenticator else { return .failure(token == nil ? .missing : .notAdmin) }
        switch await authenticator.verify(token) {
        case .failure(let failure): return .failure(failure)
        case .success(let identity): return identity.admin ? .success(()) : .failure(.notAdmin)
        }
    }

    static func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8), right = Array(rhs.utf8)
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? left[index] : 0
            let b = index < right.count ? right[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && left.count == right.count
    }
}
