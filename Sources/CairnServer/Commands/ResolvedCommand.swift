/// A command's name as Redis folds it, and what runs it.
///
/// A class, made once per known name: a connection resolves a command for every request,
/// and keeps the last one (see `RESPConnection.resolve`), so a request costs one reference
/// rather than copies of the command's closures.
final class ResolvedCommand: Sendable {
    enum Kind: Sendable {
        case data(DataCommands.Spec)
        case connection(ConnectionCommands.Handler)
        case unknown
    }

    /// In lower case (ASCII letters folded, as Redis does).
    let name: String
    let kind: Kind

    private init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// A name no table knows: `ERR unknown command` when run.
    static func unknown(_ name: String) -> ResolvedCommand { ResolvedCommand(name: name, kind: .unknown) }

    /// The command a lower-case name names.
    static func named(_ name: String) -> ResolvedCommand { known[name] ?? unknown(name) }

    /// Redis's arity of the command; nil for an unknown one.
    var arity: Int? {
        switch kind {
        case .data(let spec): return spec.arity
        case .connection(let handler): return handler.arity
        case .unknown: return nil
        }
    }

    /// Every command of the two tables (a data command wins a name both define).
    private static let known: [String: ResolvedCommand] = {
        var commands: [String: ResolvedCommand] = [:]
        for (name, handler) in ConnectionCommands.table { commands[name] = ResolvedCommand(name: name, kind: .connection(handler)) }
        for (name, spec) in DataCommands.table { commands[name] = ResolvedCommand(name: name, kind: .data(spec)) }
        return commands
    }()
}
