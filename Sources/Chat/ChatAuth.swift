import ChatCore
import Foundation
import JWTKit
import SocketIO

/// Why a token was refused: sent to the client as the CONNECT_ERROR's `data`
/// (`{code, message}`), so a page can say what to do.
struct ChatAuthFailure: Error, Sendable, Hashable {
    var code: String
    var message: String

    static let missing = ChatAuthFailure(code: "token_missing", message: "This chat requires a sign-in token (auth.token).")
    static let notText = ChatAuthFailure(code: "token_malformed", message: "auth.token must be a string.")
    static let tooLarge = ChatAuthFailure(
        code: "token_too_large", message: "The token is larger than \(ChatAuthenticator.maxTokenBytes) bytes."
    )
    static let malformed = ChatAuthFailure(code: "token_malformed", message: "The token is not a well-formed JWT.")
    static func algorithm(_ allowed: [String]) -> ChatAuthFailure {
        ChatAuthFailure(code: "token_algorithm", message: "The token must be signed with \(allowed.joined(separator: " or ")).")
    }
    static let badSignature = ChatAuthFailure(code: "token_signature", message: "The token's signature does not verify with this server's keys.")
    static let expired = ChatAuthFailure(code: "token_expired", message: "The token has expired; sign in again.")
    static let badClaims = ChatAuthFailure(
        code: "token_claims", message: "The token's claims are invalid: it needs exp, and a name or sub that is a valid chat name."
    )
    static let notAdmin = ChatAuthFailure(code: "admin_required", message: "The admin namespace needs ADMIN_TOKEN or a token with \"admin\": true.")
    static let adminDisabled = ChatAuthFailure(
        code: "admin_disabled", message: "The admin page is off: start the nodes with ADMIN_TOKEN (or AUTH_JWT_* and an admin claim)."
    )

    var connectError: ConnectError {
        ConnectError(message: "unauthorized", data: ["code": .string(code), "message": .string(message)])
    }
}

/// Who a verified token says the user is.
struct ChatIdentity: Sendable, Hashable {
    var name: String
    var admin: Bool
}

/// The claims the chat reads. Each is decoded on its own, so a claim of the wrong type is
/// reported as bad claims (after the signature verified), not as a malformed token; `exp` is
/// required: a token that never expires is refused.
struct ChatTokenClaims: JWTPayload {
    var sub: SubjectClaim?
    var name: String?
    var exp: ExpirationClaim?
    var iat: IssuedAtClaim?
    var admin: Bool?
    /// A claim the chat reads was present with the wrong type.
    var invalid = false

    struct Invalid: Error {}

    private enum CodingKeys: String, CodingKey { case sub, name, exp, iat, admin }

    init(sub: SubjectClaim?, name: String?, exp: ExpirationClaim, iat: IssuedAtClaim?, admin: Bool?) {
        (self.sub, self.name, self.exp, self.iat, self.admin) = (sub, name, exp, iat, admin)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func field<T: Decodable>(_ key: CodingKeys, _ type: T.Type, invalid: inout Bool) -> T? {
            guard container.contains(key) else { return nil }
            guard let value = try? container.decodeIfPresent(type, forKey: key) else { invalid = true; return nil }
            return value
        }
        var invalid = false
        sub = field(.sub, SubjectClaim.self, invalid: &invalid)
        name = field(.name, String.self, invalid: &invalid)
        exp = field(.exp, ExpirationClaim.self, invalid: &invalid)
        iat = field(.iat, IssuedAtClaim.self, invalid: &invalid)
        admin = field(.admin, Bool.self, invalid: &invalid)
        self.invalid = invalid
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(sub, forKey: .sub)
        try container.encodeIfPresent(name, forKey: .name)
        try container.encodeIfPresent(exp, forKey: .exp)
        try container.encodeIfPresent(iat, forKey: .iat)
        try container.encodeIfPresent(admin, forKey: .admin)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {
        guard let exp, !invalid else { throw Invalid() }
        try exp.verifyNotExpired()
    }
}

/// Verifies sign-in tokens: HS256 with a shared secret (AUTH_JWT_SECRET), or RS256/ES256
/// with the public keys of a JWKS file (AUTH_JWT_KEYS). Everything about a token is
/// hostile input: its size is capped before any decoding, its header must name one of the
/// configured algorithms (no `none`, no HS256 signed with a public key), and the name it
/// carries passes the same rules as a chosen name.
final class ChatAuthenticator: Sendable {
    /// Tokens of identity providers are well under 2 KB; 4 KB leaves room and bounds the work.
    static let maxTokenBytes = 4096

    let keys: JWTKeyCollection
    let allowedAlgorithms: [String]
    let limits: ChatLimits

    private init(keys: JWTKeyCollection, allowedAlgorithms: [String], limits: ChatLimits) {
        self.keys = keys
        self.allowedAlgorithms = allowedAlgorithms
        self.limits = limits
    }

    static func hs256(secret: String, limits: ChatLimits) async -> ChatAuthenticator {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return ChatAuthenticator(keys: keys, allowedAlgorithms: ["HS256"], limits: limits)
    }

    /// Public keys only: a JWKS with RSA or P-256 keys (each with a `kid`).
    static func jwks(json: String, limits: ChatLimits) async throws -> ChatAuthenticator {
        let keys = JWTKeyCollection()
        try await keys.add(jwksJSON: json)
        return ChatAuthenticator(keys: keys, allowedAlgorithms: ["RS256", "ES256"], limits: limits)
    }

    /// `auth.token` of a CONNECT, checked from the cheapest test to the most expensive.
    func verify(_ value: JSONValue?) async -> Result<ChatIdentity, ChatAuthFailure> {
        guard let value, !value.isNull else { return .failure(.missing) }
        guard let token = value.stringValue else { return .failure(.notText) }
        guard token.utf8.count <= Self.maxTokenBytes else { return .failure(.tooLarge) }
        guard !token.isEmpty else { return .failure(.missing) }
        guard let algorithm = Self.headerAlgorithm(of: token) else { return .failure(.malformed) }
        guard allowedAlgorithms.contains(algorithm) else { return .failure(.algorithm(allowedAlgorithms)) }
        let claims: ChatTokenClaims
        do {
            claims = try await keys.verify(token, as: ChatTokenClaims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .claimVerificationFailure: return .failure(.expired)
            case .signatureVerificationFailed, .unknownKID, .missingKIDHeader: return .failure(.badSignature)
            default: return .failure(.malformed)
            }
        } catch is ChatTokenClaims.Invalid {
            return .failure(.badClaims)
        } catch {
            return .failure(.malformed)
        }
        guard let raw = claims.name ?? claims.sub?.value,
              case .success(let name) = ChatRules.validateName(raw, limits: limits)
        else { return .failure(.badClaims) }
        return .success(ChatIdentity(name: name, admin: claims.admin ?? false))
    }

    /// A token for trying the chat (`chat token`): HS256 only, since minting needs the secret.
    func mint(name: String, admin: Bool, lifetime: TimeInterval, now: Date = Date()) async throws -> String {
        let claims = ChatTokenClaims(
            sub: SubjectClaim(value: name), name: name, exp: ExpirationClaim(value: now.addingTimeInterval(lifetime)),
            iat: IssuedAtClaim(value: now), admin: admin ? true : nil
        )
        return try await keys.sign(claims)
    }

    /// The `alg` of a compact JWS header, or nil when the token is not three base64url parts
    /// with a JSON object header. The caller capped the token's size.
    static func headerAlgorithm(of token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty else { return nil }
        var base64 = parts[0].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
              let header = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let algorithm = header["alg"] as? String
        else { return nil }
        return algorithm
    }
}
