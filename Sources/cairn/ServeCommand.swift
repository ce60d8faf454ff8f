import ArgumentParser
import Cairn
import CairnServer
import CairnStorage
import Foundation
import Logging
import SystemPackage

/// `cairn serve --dir DIR`: the store behind a RESP listener.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a data directory over RESP (redis-cli, redis-benchmark, redis-py).",
        discussion: "Stops cleanly on SIGINT or SIGTERM: stops accepting, answers what is in flight, makes everything durable, closes."
    )

    @Option(help: "The data directory (created if absent; recovered on start); or `dir` in --config.")
    var dir: String?
    @Option(help: "A redis.conf-style file: one `name value` per line (dir, bind, port, zk-port, zk-min-session-timeout, zk-max-session-timeout, appendfsync, requirepass, maxclients, protected-mode, snapshot-every-txns, snapshot-every-mib); flags given on the command line win.")
    var config: String?
    @Option(help: "Address to listen on (default 127.0.0.1).")
    var bind: String?
    @Option(name: .customLong("resp-port"), help: "RESP port (default 6379; 0: any free port).")
    var respPort: Int?
    @Option(name: .customLong("zk-port"), help: "ZooKeeper client port (default 2181; 0: any free port; off: no ZooKeeper listener).")
    var zkPort: String?
    @Option(name: .customLong("zk-min-session-timeout"), help: "Shortest ZooKeeper session timeout a client may negotiate, ms (default 4000).")
    var zkMinSessionTimeout: Int32?
    @Option(name: .customLong("zk-max-session-timeout"), help: "Longest ZooKeeper session timeout a client may negotiate, ms (default 40000).")
    var zkMaxSessionTimeout: Int32?
    @Option(help: "fsync policy: always, everysec (default) or no; CONFIG SET appendfsync changes it.")
    var appendfsync: String?
    @Option(help: "Require AUTH with this password.")
    var requirepass: String?
    @Option(help: "Most clients connected at once (default 10000).")
    var maxclients: Int?
    @Flag(help: "Accept unauthenticated clients on a non-loopback address.")
    var noProtectedMode = false
    @Option(help: "Event-loop threads of each listener (RESP and ZooKeeper). One, like Redis, is the default: writes meet at the store's writer lock, which a second thread contends for (on 2 cores: redis-benchmark -P 1 SET 194k/s with 1, 108k/s with 2; -P 16 SET from 30% slower to 10% faster with 2, round to round; ZooKeeper creates no faster with 2).")
    var threads = 1
    @Option(help: "Snapshot after this many txns (default 1000000; 0: never).")
    var snapshotEveryTxns: UInt64?
    @Option(help: "Snapshot after this many MiB of log (default 256; 0: never).")
    var snapshotEveryMib: Int?

    func run() throws {
        // Before anything starts: a SIGTERM that comes once the ready line is out (or even
        // earlier) must stop the server, never be lost or kill it uncleanly.
        try ShutdownRequest.install()
        var file: [String: String] = [:]
        if let config {
            do { file = try ServeConfigFile.parse(contentsOf: config) } catch {
                print("error: \(error)")
                throw ExitCode(2)
            }
        }
        func setting<T>(_ flag: T?, _ name: String, _ parse: (String) -> T?, _ fallback: T) throws -> T {
            if let flag { return flag }
            guard let text = file[name] else { return fallback }
            guard let value = parse(text) else { throw ValidationError("\(config ?? ""): invalid value '\(text)' for \(name)") }
            return value
        }
        let policyName = try setting(appendfsync, "appendfsync", { $0 }, "everysec")
        guard let policy = FsyncPolicy(rawValue: policyName.lowercased()) else { throw ValidationError("appendfsync must be always, everysec or no, not '\(policyName)'") }
        guard let dir = dir ?? file["dir"] else { throw ValidationError("give the data directory: --dir DIR (or `dir` in --config)") }
        let bind = try setting(bind, "bind", { $0.split(separator: " ").first.map(String.init) }, "127.0.0.1")
        let respPort = try setting(respPort, "port", { Int($0) }, 6379)
        // "off" (or -1) runs no ZooKeeper listener.
        let zkPort = try setting(zkPort.map { $0 }, "zk-port", { $0 }, "2181")
        let zkPortNumber: Int
        if zkPort.lowercased() == "off" || zkPort == "-1" { zkPortNumber = -1 } else {
            guard let number = Int(zkPort), (0...65535).contains(number) else { throw ValidationError("zk-port must be a port number or off, not '\(zkPort)'") }
            zkPortNumber = number
        }
        let zkMinTimeout = try setting(zkMinSessionTimeout, "zk-min-session-timeout", { Int32($0) }, 4000)
        let zkMaxTimeout = try setting(zkMaxSessionTimeout, "zk-max-session-timeout", { Int32($0) }, 40_000)
        let requirepass = requirepass ?? file["requirepass"]
        let maxclients = try setting(maxclients, "maxclients", { Int($0) }, 10_000)
        let protectedMode = noProtectedMode ? false : try setting(nil as Bool?, "protected-mode", { ["yes": true, "no": false][$0.lowercased()] }, true)
        let snapshotEveryTxns = try setting(snapshotEveryTxns, "snapshot-every-txns", { UInt64($0) }, 1_000_000)
        let snapshotEveryMib = try setting(snapshotEveryMib, "snapshot-every-mib", { Int($0) }, 256)
        // One line per start, stop, recovery and snapshot, on standard error.
        var logger = Logger(label: "cairn", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .info
        let store: Store
        do {
            var storeOptions = StoreOptions(fsyncPolicy: policy, snapshotEveryTxns: snapshotEveryTxns, snapshotEveryBytes: snapshotEveryMib << 20)
            storeOptions.logger = logger
            store = try Store.open(directory: FilePath(dir), options: storeOptions)
        } catch {
            print("error: cannot open \(dir): \(error)")
            throw ExitCode(2)
        }
        var options = RESPServerOptions()
        options.logger = logger
        options.host = bind
        options.port = respPort
        options.password = requirepass
        options.maxClients = maxclients
        options.protectedMode = protectedMode
        options.allocator = Allocator.name
        let server: RESPServer
        do {
            server = try RESPServer.start(store: store, options: options, threads: threads)
        } catch {
            print("error: \(error)")
            try? store.close()
            throw ExitCode(2)
        }
        var zkServer: ZKServer?
        if zkPortNumber >= 0 {
            var zkOptions = ZKServerOptions()
            zkOptions.logger = logger
            zkOptions.host = bind
            zkOptions.port = zkPortNumber
            zkOptions.minSessionTimeout = zkMinTimeout
            zkOptions.maxSessionTimeout = zkMaxTimeout
            zkOptions.maxClients = maxclients
            zkOptions.dataDirectory = dir
            do {
                zkOptions.sessionSecret = try SessionKeyFile.load(directory: dir)
                zkServer = try ZKServer.start(store: store, options: zkOptions, threads: threads)
            } catch {
                print("error: \(error)")
                try? server.stop()
                try? store.close()
                throw ExitCode(2)
            }
        }
        let zkText = zkServer.map { ", ZooKeeper on \(bind):\($0.port)" } ?? ""
        print("cairn: ready, RESP on \(bind):\(server.port)\(zkText), \(store.dbsize()) keys at index \(store.log.lastIndex), appendfsync \(policy.rawValue)")
        fflush(nil)

        server.onShutdown = { ShutdownRequest.request() }
        ShutdownRequest.wait()
        logger.info("shutting down")
        try? server.stop()
        try? zkServer?.stop()
        do { try store.close() } catch {
            print("error: closing the store: \(error)")
            throw ExitCode(1)
        }
        logger.info("stopped: everything written is durable")
    }
}

/// `cairn serve --config FILE`: redis.conf's syntax (`name value`, `#` comments, quoted values).
enum ServeConfigFile {
    static let known: Set<String> = [
        "dir", "bind", "port", "zk-port", "zk-min-session-timeout", "zk-max-session-timeout", "appendfsync", "requirepass", "maxclients", "protected-mode",
        "snapshot-every-txns", "snapshot-every-mib",
    ]

    struct ConfigError: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(contentsOf path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ConfigError(description: "cannot read the config file \(path)") }
        var settings: [String: String] = [:]
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ConfigError(description: "\(path):\(number + 1): expected `name value`, got '\(line)'") }
            let name = parts[0].lowercased()
            guard known.contains(name) else { throw ConfigError(description: "\(path):\(number + 1): unknown setting '\(parts[0])'") }
            var value = parts[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first { value = String(value.dropFirst().dropLast()) }
            settings[name] = value
        }
        return settings
    }
}

/// The key ZooKeeper session passwords are derived from, kept in the data directory
/// (`zk-session.key`, 32 random bytes, mode 0600) so clients resume their sessions across a
/// restart.
enum SessionKeyFile {
    static let name = "zk-session.key"

    struct KeyError: Error, CustomStringConvertible {
        let description: String
    }

    static func load(directory: String) throws -> [UInt8] {
        let path = directory + "/" + name
        if let data = FileManager.default.contents(atPath: path) {
            guard data.count == 32 else { throw KeyError(description: "\(path): expected 32 bytes, found \(data.count); delete it to make a new key (open ZooKeeper sessions then expire)") }
            return Array(data)
        }
        var key = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in key.indices { key[index] = generator.next() }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(key), attributes: [.posixPermissions: 0o600]) else {
            throw KeyError(description: "cannot write \(temporary)")
        }
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        guard rename(temporary, path) == 0 else { throw KeyError(description: "cannot rename \(temporary) to \(path): errno \(errno)") }
        let dirFD = open(directory, O_RDONLY)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
        return key
    }
}

/// A request to stop `cairn serve` (SIGINT, SIGTERM, or a client's SHUTDOWN), as a byte in a
/// pipe. The signal handler is installed with `signal(2)` at once, before anything starts, and
/// only writes that byte (async-signal-safe). A dispatch signal source was used before: its
/// handler is installed asynchronously, and a SIGTERM sent right after the ready line could be
/// ignored in between, leaving the server running.
enum ShutdownRequest {
    nonisolated(unsafe) private static var fds: (read: Int32, write: Int32) = (-1, -1)

    struct PipeError: Error, CustomStringConvertible {
        let description: String
    }

    static func install() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw PipeError(description: "cannot make the shutdown pipe: errno \(errno)") }
        fds = (ends[0], ends[1])
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { _ in ShutdownRequest.request() }
        }
    }

    /// Asks for a stop (from a signal handler or any thread).
    static func request() {
        var byte: UInt8 = 1
        _ = write(fds.write, &byte, 1)
    }

    /// Blocks until a stop is asked for.
    static func wait() {
        var byte: UInt8 = 0
        while read(fds.read, &byte, 1) < 0 && errno == EINTR {}
    }
}
