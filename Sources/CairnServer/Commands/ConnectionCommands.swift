import Cairn
import CairnStorage
import Foundation

/// Commands about the connection, the server, transactions, pub/sub and blocking pops: they
/// act on the session or the server rather than on one key.
enum ConnectionCommands {
    /// A class for the reason ``DataCommands/Spec`` is one.
    final class Handler: Sendable {
        let arity: Int
        let run: @Sendable (RESPConnection, Arguments) -> Void

        init(arity: Int, run: @escaping @Sendable (RESPConnection, Arguments) -> Void) {
            self.arity = arity
            self.run = run
        }
    }

    static let serverVersion = "7.2.0"

    static let table: [String: Handler] = {
        var t: [String: Handler] = [:]
        t["ping"] = Handler(arity: -1) { c, a in
            guard a.count <= 2 else { c.append(.error(RedisErrors.arity("ping"))); return }
            if c.session.isSubscribedRESP2 {
                c.append(.array([.bulk("pong"), .bulk(a.count == 2 ? a[1] : Bytes([]))]))
            } else {
                c.append(a.count == 2 ? .bulk(a[1]) : .simple("PONG"))
            }
        }
        t["echo"] = Handler(arity: 2) { c, a in c.append(.bulk(a[1])) }
        t["quit"] = Handler(arity: -1) { c, _ in c.quit() }
        t["select"] = Handler(arity: 2) { c, a in
            guard let index = RedisNumbers.parseInteger(a[1]) else { c.append(.error(RedisErrors.notInteger)); return }
            guard index >= 0 && index < Int64(StoreState.databaseCount) else { c.append(.error("ERR DB index is out of range")); return }
            c.session.db = Int(index)
            c.server.lock.withLock { c.server.clients[c.session.id]?.db = Int(index) }
            c.append(.ok)
        }
        t["flushall"] = Handler(arity: -1) { c, a in
            guard a.count <= 2, a.count == 1 || ["ASYNC", "SYNC"].contains(a.upper(1)) else { c.append(.error(RedisErrors.syntax)); return }
            // Every database, in one txn.
            let operations: [Cairn.Operation] = [.flushAll] + (1..<StoreState.databaseCount).map { .inDatabase($0, .flushAll) }
            if c.decideBatch(operations) != nil { c.append(.ok) }
        }
        t["time"] = Handler(arity: 1) { c, _ in c.append(time()) }
        t["auth"] = Handler(arity: -2) { c, a in
            guard a.count <= 3 else { c.append(.error(RedisErrors.syntax)); return }
            if let error = authenticate(c, user: a.count == 3 ? a[1] : nil, password: a[a.count - 1]) { c.append(.error(error)) } else { c.append(.ok) }
        }
        t["hello"] = Handler(arity: -1) { c, a in hello(c, a) }
        t["client"] = Handler(arity: -2) { c, a in client(c, a) }
        t["command"] = Handler(arity: -1) { c, a in command(c, a) }
        t["info"] = Handler(arity: -1) { c, a in c.append(.bulk(info(c, a))) }
        t["config"] = Handler(arity: -2) { c, a in config(c, a) }
        t["save"] = Handler(arity: 1) { c, _ in
            do {
                try c.store.snapshot()
                c.server.lock.withLock { c.server.lastSave = Int64(Date().timeIntervalSince1970) }
                c.append(.ok)
            } catch { c.append(.error("ERR \(error)")) }
        }
        t["bgsave"] = Handler(arity: -1) { c, _ in
            background(c)
            c.append(.simple("Background saving started"))
        }
        t["bgrewriteaof"] = Handler(arity: 1) { c, _ in
            background(c)
            c.append(.simple("Background append only file rewriting started"))
        }
        t["lastsave"] = Handler(arity: 1) { c, _ in c.append(.integer(c.server.lock.withLock { c.server.lastSave })) }
        t["multi"] = Handler(arity: 1) { c, _ in
            if c.session.inMulti { c.append(.error("ERR MULTI calls can not be nested")); return }
            c.session.inMulti = true
            c.append(.ok)
        }
        t["exec"] = Handler(arity: 1) { c, _ in
            guard c.session.inMulti else { c.append(.error("ERR EXEC without MULTI")); return }
            c.session.inMultiExec = true
            c.exec()
            c.session.inMultiExec = false
        }
        t["discard"] = Handler(arity: 1) { c, _ in
            guard c.session.inMulti else { c.append(.error("ERR DISCARD without MULTI")); return }
            c.session.resetMulti()
            c.append(.ok)
        }
        t["watch"] = Handler(arity: -2) { c, a in
            if c.session.inMulti { c.append(.error("ERR WATCH inside MULTI is not allowed")); return }
            c.session.watched.append(contentsOf: c.store.versions(a.values(from: 1), db: c.session.db))
            c.append(.ok)
        }
        t["unwatch"] = Handler(arity: 1) { c, _ in
            c.session.watched = []
            c.append(.ok)
        }
        t["reset"] = Handler(arity: 1) { c, _ in
            c.session.resetMulti()
            unsubscribe(c, [], patterns: false, quiet: true)
            unsubscribe(c, [], patterns: true, quiet: true)
            c.session.protocolVersion = 2
            c.session.name = nil
            c.session.authenticated = c.server.lock.withLock { c.server.options.password == nil }
            c.append(.simple("RESET"))
        }
        t["shutdown"] = Handler(arity: -1) { c, a in
            guard a.values(from: 1).allSatisfy({ ["NOSAVE", "SAVE", "NOW", "FORCE", "ABORT"].contains($0.string.uppercased()) }) else {
                c.append(.error(RedisErrors.syntax))
                return
            }
            guard let handler = c.server.lock.withLock({ c.server.shutdownHandler }) else {
                c.append(.error("ERR Errors trying to SHUTDOWN. Check logs."))
                return
            }
            // Like Redis: no reply on success; the connection closes as the server stops.
            handler()
        }
        t["publish"] = Handler(arity: 3) { c, a in c.append(.integer(Int64(c.server.publish(a[1], a[2])))) }
        t["subscribe"] = Handler(arity: -2) { c, a in subscribe(c, a.values(from: 1), patterns: false) }
        t["psubscribe"] = Handler(arity: -2) { c, a in subscribe(c, a.values(from: 1), patterns: true) }
        t["unsubscribe"] = Handler(arity: -1) { c, a in unsubscribe(c, a.values(from: 1), patterns: false) }
        t["punsubscribe"] = Handler(arity: -1) { c, a in unsubscribe(c, a.values(from: 1), patterns: true) }
        t["pubsub"] = Handler(arity: -2) { c, a in pubsub(c, a) }
        t["blpop"] = Handler(arity: -3) { c, a in blockingPop(c, a, left: true) }
        t["brpop"] = Handler(arity: -3) { c, a in blockingPop(c, a, left: false) }
        return t
    }()

    /// Commands allowed between MULTI and EXEC that are not data commands: their reply now.
    static func inTransaction(_ c: RESPConnection, _ a: Arguments) -> RESPValue? {
        switch a[0].string.lowercased() {
        case "ping": return a.count == 2 ? .bulk(a[1]) : .simple("PONG")
        case "echo": return .bulk(a[1])
        case "time": return time()
        case "publish": return .integer(Int64(c.server.publish(a[1], a[2])))
        default: return nil
        }
    }

    static func time() -> RESPValue {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return .array([.bulk(String(now.tv_sec)), .bulk(String(now.tv_nsec / 1000))])
    }

    static func background(_ c: RESPConnection) {
        let store = c.store
        let server = c.server
        Thread.detachNewThread {
            if (try? store.snapshot()) != nil { server.lock.withLock { server.lastSave = Int64(Date().timeIntervalSince1970) } }
        }
    }

    // MARK: Authentication

    /// Nil when the password is right; otherwise Redis's error.
    static func authenticate(_ c: RESPConnection, user: Bytes?, password: Bytes) -> String? {
        guard let expected = c.server.lock.withLock({ c.server.options.password }) else {
            return "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
        }
        let userOK = user == nil || user == "default"
        guard userOK && constantTimeEquals(Array(expected.utf8), password.storage) else {
            return "WRONGPASS invalid username-password pair or user is disabled."
        }
        c.session.authenticated = true
        return nil
    }

    /// Compares without stopping at the first difference, so timing tells nothing.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    static func hello(_ c: RESPConnection, _ a: Arguments) {
        var version = c.session.protocolVersion
        var i = 1
        if a.count > 1 {
            guard let requested = RedisNumbers.parseInteger(a[1]) else { c.append(.error("ERR Protocol version is not an integer or out of range")); return }
            guard requested == 2 || requested == 3 else { c.append(.error("NOPROTO unsupported protocol version")); return }
            version = Int(requested)
            i = 2
        }
        var name: String?
        while i < a.count {
            switch a.upper(i) {
            case "AUTH" where i + 2 < a.count:
                if let error = authenticate(c, user: a[i + 1], password: a[i + 2]) { c.append(.error(error)); return }
                i += 3
            case "SETNAME" where i + 1 < a.count:
                name = a[i + 1].string
                i += 2
            default:
                c.append(.error("ERR Syntax error in HELLO option '\(a[i].string)'"))
                return
            }
        }
        guard c.session.authenticated else { c.append(.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")); return }
        c.session.protocolVersion = version
        if let name { c.session.name = name; c.server.lock.withLock { c.server.clients[c.session.id]?.name = name } }
        c.append(.map([
            (.bulk("server"), .bulk("redis")), (.bulk("version"), .bulk(serverVersion)),
            (.bulk("proto"), .integer(Int64(version))), (.bulk("id"), .integer(c.session.id)),
            (.bulk("mode"), .bulk("standalone")), (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ]))
    }

    // MARK: CLIENT, COMMAND, INFO, CONFIG

    static func client(_ c: RESPConnection, _ a: Arguments) {
        switch a.upper(1) {
        case "ID": c.append(.integer(c.session.id))
        case "SETNAME":
            guard a.count == 3 else { c.append(.error(RedisErrors.arity("client|setname"))); return }
            let name = a[2].string
            guard !name.contains(where: { $0 == " " || $0 == "\n" }) else { c.append(.error("ERR Client names cannot contain spaces, newlines or special characters.")); return }
            c.session.name = name.isEmpty ? nil : name
            c.server.lock.withLock { c.server.clients[c.session.id]?.name = c.session.name }
            c.append(.ok)
        case "GETNAME": c.append(c.session.name.map { .bulk($0) } ?? .null)
        case "INFO": c.append(.bulk(clientLine(c.server, c.session.id) + " cmd=\(c.session.lastCommand.name)\n"))
        case "LIST":
            let ids = c.server.lock.withLock { c.server.clients.keys.sorted() }
            c.append(.bulk(ids.map { clientLine(c.server, $0) + "\n" }.joined()))
        case "SETINFO", "NO-EVICT", "NO-TOUCH", "REPLY": c.append(.ok)
        default: c.append(.error("ERR unknown subcommand '\(a[1].string)'. Try CLIENT HELP."))
        }
    }

    static func clientLine(_ server: ServerState, _ id: Int64) -> String {
        server.lock.withLock {
            guard let info = server.clients[id] else { return "" }
            let age = Int(Date().timeIntervalSince(info.connectedAt))
            return "id=\(info.id) addr=\(info.address) name=\(info.name ?? "") age=\(age) db=\(info.db)"
        }
    }

    static func commandInfo(_ name: String) -> RESPValue? {
        if let spec = DataCommands.table[name] {
            return .array([.bulk(name), .integer(Int64(spec.arity)), .set([.simple(spec.isWrite ? "write" : "readonly")]),
                           .integer(Int64(spec.firstKey)), .integer(Int64(spec.lastKey)), .integer(Int64(spec.step)),
                           .set([]), .set([]), .array([]), .array([])])
        }
        if let handler = table[name] {
            return .array([.bulk(name), .integer(Int64(handler.arity)), .set([]), .integer(0), .integer(0), .integer(0),
                           .set([]), .set([]), .array([]), .array([])])
        }
        return nil
    }

    static var allCommandNames: [String] { (Array(DataCommands.table.keys) + Array(table.keys) + ["command"]).sorted() }

    static func command(_ c: RESPConnection, _ a: Arguments) {
        guard a.count > 1 else { c.append(.array(allCommandNames.compactMap(commandInfo))); return }
        switch a.upper(1) {
        case "COUNT": c.append(.integer(Int64(Set(allCommandNames).count)))
        case "INFO": c.append(.array(a.values(from: 2).map { commandInfo($0.string.lowercased()) ?? .nullArray }))
        case "DOCS": c.append(.map([]))  // no docs: redis-cli falls back to its own help
        case "LIST": c.append(.array(allCommandNames.map { .bulk($0) }))
        default: c.append(.error("ERR unknown subcommand '\(a[1].string)'. Try COMMAND HELP."))
        }
    }

    static func info(_ c: RESPConnection, _ a: Arguments) -> String {
        c.countCommands()  // this connection's commands so far, INFO itself included
        let server = c.server
        let store = c.store
        let wanted = a.count > 1 ? Set(a.values(from: 1).map { $0.string.lowercased() }) : ["default"]
        func include(_ section: String) -> Bool { wanted.contains("all") || wanted.contains("everything") || wanted.contains("default") || wanted.contains(section) }
        let (clients, connections, commands, rejected, lastSave, options, started) = server.lock.withLock {
            (server.clients.count, server.totalConnections, server.totalCommands.load(ordering: .relaxed), server.rejectedConnections, server.lastSave, server.options, server.startedAt)
        }
        var text = ""
        if include("server") {
            text += "# Server\r\nredis_version:\(serverVersion)\r\ncairn_version:0.1.0\r\nredis_mode:standalone\r\nos:Linux\r\n"
            text += "process_id:\(getpid())\r\ntcp_port:\(options.port)\r\nuptime_in_seconds:\(Int(Date().timeIntervalSince(started)))\r\n\r\n"
        }
        if include("clients") {
            text += "# Clients\r\nconnected_clients:\(clients)\r\nmaxclients:\(options.maxClients)\r\n\r\n"
        }
        if include("memory") {
            text += "# Memory\r\nmem_allocator:\(options.allocator)\r\n\r\n"
        }
        if include("persistence") {
            let stats = store.log.stats
            let snapshots = store.snapshotStatus
            text += "# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:\(store.log.fsyncPolicy.rawValue)\r\n"
            text += "aof_last_write_status:\(store.log.writerFailure == nil ? "ok" : "err")\r\naof_current_size:\(stats.appendedBytes)\r\n"
            text += "rdb_last_save_time:\(lastSave)\r\nrdb_last_bgsave_status:\(snapshots.lastError == nil ? "ok" : "err")\r\n"
            text += "rdb_saves:\(snapshots.taken)\r\nlast_snapshot_index:\(snapshots.manifest?.snapshots.first ?? 0)\r\n"
            text += "log_last_index:\(store.log.lastIndex)\r\nlog_durable_index:\(stats.durableIndex)\r\nlog_syncs:\(stats.syncs)\r\n"
            text += String(format: "log_mean_batch:%.2f\r\n", stats.meanBatchSize)
            text += String(format: "log_mean_sync_us:%.1f\r\n", stats.meanSyncMicroseconds)
            text += "log_max_sync_us:\(stats.maxSyncNanoseconds / 1000)\r\nlog_group_commit_target:\(stats.groupCommitTarget)\r\n\r\n"
        }
        if include("stats") {
            text += "# Stats\r\ntotal_connections_received:\(connections)\r\ntotal_commands_processed:\(commands)\r\nrejected_connections:\(rejected)\r\n"
            let expiry = store.expiryCounts
            text += "expired_keys:\(expiry.fired)\r\n\r\n"
        }
        if include("keyspace") {
            text += "# Keyspace\r\n"
            let state = store.stateView()
            for db in 0..<StoreState.databaseCount {
                let keyspace = state.keyspace(db)
                guard keyspace.count > 0 else { continue }
                let expires = keyspace.entries.reduce(0) { $0 + ($1.value.expiresAt != 0 ? 1 : 0) }
                text += "db\(db):keys=\(keyspace.count),expires=\(expires),avg_ttl=0\r\n"
            }
        }
        return text
    }

    static func config(_ c: RESPConnection, _ a: Arguments) {
        switch a.upper(1) {
        case "GET":
            guard a.count >= 3 else { c.append(.error(RedisErrors.arity("config|get"))); return }
            let options = c.server.lock.withLock { c.server.options }
            let values: [(String, String)] = [
                ("appendonly", "yes"), ("appendfsync", c.store.log.fsyncPolicy.rawValue), ("save", ""),
                ("databases", String(StoreState.databaseCount)), ("maxclients", String(options.maxClients)), ("port", String(options.port)),
                ("bind", options.host), ("requirepass", options.password ?? ""), ("dir", c.store.directory.string),
                ("proto-max-bulk-len", String(options.limits.maxBulkLength)),
                ("client-query-buffer-limit", String(options.limits.maxQueryBuffer)),
                ("protected-mode", options.protectedMode ? "yes" : "no"),
            ]
            var pairs: [(RESPValue, RESPValue)] = []
            for pattern in a.values(from: 2) {
                for (key, value) in values where Glob.matches(Bytes(pattern.string.lowercased()), Bytes(key)) && !pairs.contains(where: { $0.0 == .bulk(key) }) {
                    pairs.append((.bulk(key), .bulk(value)))
                }
            }
            c.append(.map(pairs))
        case "SET":
            guard a.count >= 4, a.count % 2 == 0 else { c.append(.error(RedisErrors.arity("config|set"))); return }
            for i in stride(from: 2, to: a.count, by: 2) {
                let key = a[i].string.lowercased(), value = a[i + 1].string
                switch key {
                case "appendfsync":
                    guard let policy = FsyncPolicy(rawValue: value.lowercased()) else {
                        c.append(.error("ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: always, everysec, no"))
                        return
                    }
                    c.store.log.fsyncPolicy = policy
                case "maxclients":
                    guard let n = Int(value), n > 0 else { c.append(.error("ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer")); return }
                    c.server.lock.withLock { c.server.options.maxClients = n }
                case "requirepass":
                    c.server.lock.withLock { c.server.options.password = value.isEmpty ? nil : value }
                case "save", "appendonly":
                    break  // snapshots follow the store's own triggers; the log is always on
                default:
                    c.append(.error("ERR Unknown option or number of arguments for CONFIG SET - '\(a[i].string)'"))
                    return
                }
            }
            c.append(.ok)
        case "RESETSTAT":
            c.countCommands()
            c.server.totalCommands.store(0, ordering: .relaxed)
            c.server.lock.withLock { c.server.rejectedConnections = 0 }
            c.append(.ok)
        case "REWRITE": c.append(.error("ERR The server is running without a config file"))
        default: c.append(.error("ERR unknown subcommand '\(a[1].string)'. Try CONFIG HELP."))
        }
    }

    // MARK: Pub/sub

    static func subscribe(_ c: RESPConnection, _ names: [Bytes], patterns: Bool) {
        let deliver = c.deliverer()
        for name in names {
            if patterns { c.session.patterns.insert(name) } else { c.session.channels.insert(name) }
            c.server.lock.withLock {
                if patterns { c.server.patterns[name, default: [:]][c.session.id] = ServerState.Subscriber(deliver: deliver) }
                else { c.server.channels[name, default: [:]][c.session.id] = ServerState.Subscriber(deliver: deliver) }
            }
            c.append(.push([.bulk(patterns ? "psubscribe" : "subscribe"), .bulk(name), .integer(Int64(c.session.subscriptionCount))]))
        }
    }

    static func unsubscribe(_ c: RESPConnection, _ names: [Bytes], patterns: Bool, quiet: Bool = false) {
        let targets = names.isEmpty ? Array(patterns ? c.session.patterns : c.session.channels) : names
        if targets.isEmpty && !quiet {
            c.append(.push([.bulk(patterns ? "punsubscribe" : "unsubscribe"), .null, .integer(Int64(c.session.subscriptionCount))]))
            return
        }
        for name in targets {
            if patterns { c.session.patterns.remove(name) } else { c.session.channels.remove(name) }
            c.server.lock.withLock {
                if patterns {
                    c.server.patterns[name]?[c.session.id] = nil
                    if c.server.patterns[name]?.isEmpty == true { c.server.patterns[name] = nil }
                } else {
                    c.server.channels[name]?[c.session.id] = nil
                    if c.server.channels[name]?.isEmpty == true { c.server.channels[name] = nil }
                }
            }
            if !quiet { c.append(.push([.bulk(patterns ? "punsubscribe" : "unsubscribe"), .bulk(name), .integer(Int64(c.session.subscriptionCount))])) }
        }
    }

    static func pubsub(_ c: RESPConnection, _ a: Arguments) {
        switch a.upper(1) {
        case "CHANNELS":
            let pattern = a.count > 2 ? a[2] : Bytes("*")
            let names = c.server.lock.withLock { c.server.channels.keys.filter { Glob.matches(pattern, $0) } }.sorted()
            c.append(.array(names.map { .bulk($0) }))
        case "NUMSUB":
            let counts = c.server.lock.withLock { a.values(from: 2).map { ($0, c.server.channels[$0]?.count ?? 0) } }
            c.append(.map(counts.map { (.bulk($0.0), .integer(Int64($0.1))) }))
        case "NUMPAT":
            c.append(.integer(Int64(c.server.lock.withLock { c.server.patterns.count })))
        default: c.append(.error("ERR unknown subcommand '\(a[1].string)'. Try PUBSUB HELP."))
        }
    }

    // MARK: Blocking pops

    static func blockingPop(_ c: RESPConnection, _ a: Arguments, left: Bool) {
        guard let timeout = RedisNumbers.parseFloat(a[a.count - 1]), timeout.isFinite else {
            c.append(.error("ERR timeout is not a float or out of range"))
            return
        }
        guard timeout >= 0 else { c.append(.error("ERR timeout is negative")); return }
        c.blockingPop(keys: a.values(from: 1, to: a.count - 1), timeout: timeout, left: left)
    }
}
