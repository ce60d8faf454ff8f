import Cairn
import Foundation

/// ZooKeeper's four-letter words: an operator sends four ASCII bytes instead of a connect
/// request (`echo ruok | nc 127.0.0.1 2181`) and gets text back, then the connection closes.
enum ZKFourLetterWords {
    static let words: Set<String> = ["ruok", "stat", "srvr", "mntr", "conf", "cons", "wchs", "wchc", "wchp", "dump", "envi", "isro", "crst", "srst", "dirs"]
    /// What `srvr` and `mntr` say the version is: ZooKeeper's protocol level, and ours.
    static let version = "3.8.0-cairn, built on Cairn"

    /// The word a connection's first four bytes spell (read as a frame length), if any.
    static func word(_ length: Int32) -> String? {
        let value = UInt32(bitPattern: length)
        let bytes = [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
        guard let word = String(bytes: bytes, encoding: .ascii), words.contains(word) else { return nil }
        return word
    }

    static func answer(_ word: String, server: ZKServerState) -> String {
        let store = server.store
        switch word {
        case "ruok": return "imok"
        case "isro": return "rw"
        case "srvr": return summary(server, clients: false)
        case "stat": return summary(server, clients: true)
        case "cons": return server.connections.map(\.line).joined(separator: "\n") + "\n\n"
        case "crst":
            for info in server.connections { info.lock.withLock { info.latency = LatencyStats() } }
            return "Connection stats reset.\n"
        case "srst":
            server.lock.withLock { server.latency = LatencyStats() }
            server.packetsReceived.store(0, ordering: .relaxed)
            server.packetsSent.store(0, ordering: .relaxed)
            return "Server stats reset.\n"
        case "conf":
            let o = server.options
            return """
                clientPort=\(o.port)
                clientPortAddress=\(o.host)
                dataDir=\(o.dataDirectory)
                dataLogDir=\(o.dataDirectory)
                tickTime=\(o.tickTime)
                maxClientCnxns=\(o.maxClients)
                minSessionTimeout=\(o.minSessionTimeout)
                maxSessionTimeout=\(o.maxSessionTimeout)
                jute.maxbuffer=\(o.maxFrame)
                serverId=0

                """
        case "wchs":
            let watching = server.connections.filter { $0.outbox.count > 0 }
            let (paths, total) = watchTotals(server)
            return "\(watching.count) connections watching \(paths) paths\nTotal watches:\(total)\n"
        case "wchc", "wchp":
            return watchListing(server, byPath: word == "wchp")
        case "dirs":
            return "datadir_size: \(directorySize(server.options.dataDirectory))\nlogdir_size: 0\n"
        case "dump":
            let sessions = store.readTree { tree, _ in tree.sessions.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 } }
            var text = "SessionTracker dump:\nGlobal Sessions(\(sessions.count)):\n"
            for (id, session) in sessions { text += "0x\(String(id, radix: 16))\t\(session.timeout)ms\n" }
            let owners = sessions.filter { !$0.1.ephemerals.isEmpty }
            text += "ephemeral nodes dump:\nSessions with Ephemerals (\(owners.count)):\n"
            for (id, session) in owners {
                text += "0x\(String(id, radix: 16)):\n"
                for path in session.ephemerals.sorted() { text += "\t\(path)\n" }
            }
            return text + "Connections with Ephemerals (\(owners.count)):\n"
        case "envi":
            var uts = utsname()
            uname(&uts)
            func field<T>(_ value: T) -> String { withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
            return """
                Environment:
                zookeeper.version=\(version)
                host.name=\(field(uts.nodename))
                server.implementation=Cairn (Swift)
                os.name=\(field(uts.sysname))
                os.arch=\(field(uts.machine))
                os.version=\(field(uts.release))
                user.dir=\(FileManager.default.currentDirectoryPath)
                os.cpu.count=\(ProcessInfo.processInfo.activeProcessorCount)
                os.memory.total=\(ProcessInfo.processInfo.physicalMemory >> 20)MB

                """
        case "mntr":
            let (nodes, ephemerals, dataSize, zxid) = store.readTree { tree, zxid in
                (tree.count, tree.sessions.values.reduce(0) { $0 + $1.ephemerals.count },
                 tree.nodes.reduce(0) { $0 + $1.key.utf8.count + $1.value.data.count }, zxid)
            }
            let latency = server.lock.withLock { server.latency }
            let (paths, watches) = watchTotals(server)
            return [
                ("zk_version", version),
                ("zk_server_state", "standalone"),
                ("zk_avg_latency", String(format: "%.4f", latency.average)),
                ("zk_max_latency", String(format: "%.4f", latency.max)),
                ("zk_min_latency", String(format: "%.4f", latency.min)),
                ("zk_packets_received", "\(server.packetsReceived.load(ordering: .relaxed))"),
                ("zk_packets_sent", "\(server.packetsSent.load(ordering: .relaxed))"),
                ("zk_num_alive_connections", "\(server.connections.count)"),
                ("zk_outstanding_requests", "0"),
                ("zk_znode_count", "\(nodes)"),
                ("zk_watch_count", "\(watches)"),
                ("zk_watched_paths", "\(paths)"),
                ("zk_ephemerals_count", "\(ephemerals)"),
                ("zk_approximate_data_size", "\(dataSize)"),
                ("zk_open_file_descriptor_count", "\(openDescriptors())"),
                ("zk_max_file_descriptor_count", "\(maxDescriptors())"),
                ("zk_last_zxid", "0x\(String(zxid, radix: 16))"),
                ("zk_uptime", "\(Int(Date().timeIntervalSince(server.startedAt) * 1000))"),
            ].map { "\($0.0)\t\($0.1)" }.joined(separator: "\n") + "\n"
        default:
            return "Unknown command: \(word)\n"
        }
    }

    /// `stat` and `srvr`.
    static func summary(_ server: ZKServerState, clients: Bool) -> String {
        let latency = server.lock.withLock { server.latency }
        let (nodes, zxid) = server.store.readTree { tree, zxid in (tree.count, zxid) }
        var text = "Zookeeper version: \(version)\n"
        if clients { text += "Clients:\n" + server.connections.map { $0.line + "\n" }.joined() + "\n" }
        text += "Latency min/avg/max: \(Int(latency.min))/\(String(format: "%.4f", latency.average))/\(Int(latency.max))\n"
        text += "Received: \(server.packetsReceived.load(ordering: .relaxed))\n"
        text += "Sent: \(server.packetsSent.load(ordering: .relaxed))\n"
        text += "Connections: \(server.connections.count)\n"
        text += "Outstanding: 0\n"
        text += "Zxid: 0x\(String(zxid, radix: 16))\n"
        text += "Mode: standalone\n"
        text += "Node count: \(nodes)\n"
        return text
    }

    static func watchTotals(_ server: ZKServerState) -> (paths: Int, watches: Int) {
        var paths = Set<String>()
        var total = 0
        for info in server.connections {
            for key in info.outbox.paths {
                paths.insert(key.path)
                total += 1
            }
        }
        return (paths.count, total)
    }

    /// `wchc` (by session) and `wchp` (by path).
    static func watchListing(_ server: ZKServerState, byPath: Bool) -> String {
        var bySession: [(Int64, [String])] = []
        for info in server.connections {
            let (session, keys) = (info.lock.withLock { info.sessionID }, info.outbox.paths)
            if !keys.isEmpty { bySession.append((session, Set(keys.map(\.path)).sorted())) }
        }
        if !byPath {
            return bySession.sorted { $0.0 < $1.0 }.map { "0x\(String($0.0, radix: 16))\n" + $0.1.map { "\t\($0)\n" }.joined() }.joined()
        }
        var byPathTable: [String: [Int64]] = [:]
        for (session, paths) in bySession { for path in paths { byPathTable[path, default: []].append(session) } }
        return byPathTable.keys.sorted().map { path in path + "\n" + byPathTable[path]!.sorted().map { "\t0x\(String($0, radix: 16))\n" }.joined() }.joined()
    }

    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    static func maxDescriptors() -> Int {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(limit.rlim_cur) : 0
    }

    static func directorySize(_ path: String) -> Int {
        guard !path.isEmpty, let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return 0 }
        return names.reduce(0) { total, name in
            total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as? Int) ?? 0)
        }
    }
}
