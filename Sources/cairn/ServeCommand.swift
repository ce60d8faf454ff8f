import ArgumentParser
import Cairn
import CairnServer
import CairnStorage
import Dispatch
import Foundation
import SystemPackage

/// `cairn serve --dir DIR`: the store behind a RESP listener.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a data directory over RESP (redis-cli, redis-benchmark, redis-py).",
        discussion: "Stops cleanly on SIGINT or SIGTERM: stops accepting, answers what is in flight, makes everything durable, closes."
    )

    @Option(help: "The data directory (created if absent; recovered on start).")
    var dir: String
    @Option(help: "Address to listen on (loopback by default).")
    var bind = "127.0.0.1"
    @Option(name: .customLong("resp-port"), help: "RESP port (0: any free port).")
    var respPort = 6379
    @Option(help: "fsync policy: always, everysec or no (CONFIG SET appendfsync changes it).")
    var appendfsync = "everysec"
    @Option(help: "Require AUTH with this password.")
    var requirepass: String?
    @Option(help: "Most clients connected at once.")
    var maxclients = 10_000
    @Flag(help: "Accept unauthenticated clients on a non-loopback address.")
    var noProtectedMode = false
    @Option(help: "Event-loop threads serving clients. One, like Redis, is fastest here: writes meet at the store's writer lock, and a second thread contends for it (SET 194k/s with 1, 108k/s with 2 on 2 cores).")
    var threads = 1
    @Option(help: "Snapshot after this many txns (0: never).")
    var snapshotEveryTxns: UInt64 = 1_000_000
    @Option(help: "Snapshot after this many MiB of log (0: never).")
    var snapshotEveryMib = 256

    func run() throws {
        guard let policy = FsyncPolicy(rawValue: appendfsync) else { throw ValidationError("--appendfsync must be always, everysec or no") }
        let store: Store
        do {
            store = try Store.open(directory: FilePath(dir), options: StoreOptions(
                fsyncPolicy: policy, snapshotEveryTxns: snapshotEveryTxns, snapshotEveryBytes: snapshotEveryMib << 20))
        } catch {
            print("error: cannot open \(dir): \(error)")
            throw ExitCode(2)
        }
        for note in store.recoveryNotes { print("note: \(note)") }
        if let tail = store.log.recovery.problem { print("note: recovery: \(tail)") }
        var options = RESPServerOptions()
        options.host = bind
        options.port = respPort
        options.password = requirepass
        options.maxClients = maxclients
        options.protectedMode = !noProtectedMode
        let server: RESPServer
        do {
            server = try RESPServer.start(store: store, options: options, threads: threads)
        } catch {
            print("error: \(error)")
            try? store.close()
            throw ExitCode(2)
        }
        print("cairn: ready, RESP on \(bind):\(server.port), \(store.dbsize()) keys at index \(store.log.lastIndex), appendfsync \(policy.rawValue)")
        fflush(nil)

        let done = DispatchSemaphore(value: 0)
        let queue = DispatchQueue(label: "cairn.signals")
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { done.signal() }
            source.resume()
            sources.append(source)
        }
        server.onShutdown = { done.signal() }
        done.wait()
        print("cairn: shutting down")
        try? server.stop()
        do { try store.close() } catch {
            print("error: closing the store: \(error)")
            throw ExitCode(1)
        }
        print("cairn: stopped")
        _ = sources
    }
}
