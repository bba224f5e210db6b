import ArgumentParser
import ChatCore
import Foundation

/// `chat token --name Ann`: prints an HS256 sign-in token for trying AUTH_JWT_SECRET.
/// Real deployments get tokens from their identity provider instead.
struct ChatTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print a sign-in token (HS256) for the chat started with the same AUTH_JWT_SECRET."
    )

    @Option(help: "The display name the token carries (claims name and sub).")
    var name: String

    @Option(name: .customLong("auth-jwt-secret"), help: "HS256 secret, at least 32 bytes (env AUTH_JWT_SECRET).")
    var secret: String = Env.string("AUTH_JWT_SECRET") ?? ""

    @Option(help: "Seconds until the token expires.")
    var ttl: Int = 3600

    @Flag(help: "Add \"admin\": true: the token then also opens the /admin page.")
    var admin = false

    func run() async throws {
        guard secret.utf8.count >= 32 else { throw ValidationError("give --auth-jwt-secret or AUTH_JWT_SECRET (at least 32 bytes)") }
        guard (1...31_536_000).contains(ttl) else { throw ValidationError("--ttl must be 1 to 31536000 seconds") }
        guard case .success(let valid) = ChatRules.validateName(name) else { throw ValidationError("--name: \(ChatError.invalidName.message)") }
        let authenticator = await ChatAuthenticator.hs256(secret: secret, limits: ChatLimits())
        let token = try await authenticator.mint(name: valid, admin: admin, lifetime: TimeInterval(ttl))
        print(token)
    }
}
