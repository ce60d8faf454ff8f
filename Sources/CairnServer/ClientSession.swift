import Cairn

/// What one connection remembers between commands.
struct ClientSession {
    var id: Int64 = 0
    var protocolVersion = 2
    var authenticated = true
    var name: String?
    /// The last command run (CLIENT INFO's `cmd=`).
    var lastCommand = ResolvedCommand.unknown("NULL")
    /// The `SELECT`ed database.
    var db = 0
    var inMulti = false
    /// True while EXEC runs the queued commands (BLPOP does not block then).
    var inMultiExec = false
    var multiFailed = false
    var queued: [[Bytes]] = []
    /// WATCHed keys, each with its database and the version it had (nil: absent).
    var watched: [KeyGuard] = []
    var channels: Set<Bytes> = []
    var patterns: Set<Bytes> = []

    var subscriptionCount: Int { channels.count + patterns.count }
    /// RESP2 clients with a subscription may only (un)subscribe, ping and quit.
    var isSubscribedRESP2: Bool { protocolVersion == 2 && subscriptionCount > 0 }

    mutating func resetMulti() {
        inMulti = false
        multiFailed = false
        queued = []
        watched = []
    }
}
