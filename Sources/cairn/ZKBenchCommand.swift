import ArgumentParser
import Cairn
import CairnBench
import CairnServer
import CairnStorage
import Foundation
import SystemPackage

/// `cairn bench zk`: ZooKeeper operations over the wire, against Cairn's listener (started
/// in-process on a scratch directory) or any ZooKeeper server given by `--port`.
struct ZKBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zk",
        abstract: "Benchmark ZooKeeper operations over the wire: Cairn's listener, or any server at --port.",
        discussion: "A load generator that is not client-bound: one connection per client, each with --pipeline requests in flight, driven by --client-threads threads with poll. Benchmarks/zk-vs-zookeeper.sh runs it against Cairn and Apache ZooKeeper side by side."
    )

    @Option(help: "Comma-separated operations: \(ZKLoad.Operation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var ops = "create,setData,getData,exists,getChildren,delete"
    @Option(help: "Requests per row (split over the clients).")
    var count = 20_000
    @Option(help: "Comma-separated numbers of clients (connections).")
    var clients = "1"
    @Option(help: "Comma-separated numbers of requests each client keeps in flight (1: synchronous).")
    var pipeline = "1,32"
    @Option(help: "Client threads sharing the connections (each drives its share with poll); 1 leaves the most CPU to the server on a small machine.")
    var clientThreads = 1
    @Option(help: "Data bytes for create and setData.")
    var valueSize = 100
    @Option(help: "A ZooKeeper server's port on --host; without it, Cairn's listener is started in-process.")
    var port: Int?
    @Option(help: "The server's address.")
    var host = "127.0.0.1"
    @Option(help: "fsync policy of the in-process Cairn (always matches ZooKeeper's forceSync=yes).")
    var appendfsync = "always"
    @Option(help: "Scratch directory of the in-process Cairn (removed afterwards).")
    var dir = "/tmp/cairn-bench-zk"
    @Option(help: "Name of the server in the output.")
    var label = ""
    @Flag(help: "Print one JSON object per row instead of a table.")
    var json = false

    func run() throws {
        let opList = try ops.split(separator: ",").map { name in
            guard let op = ZKLoad.Operation(rawValue: String(name)) else { throw ValidationError("unknown op '\(name)'") }
            return op
        }
        func numbers(_ text: String, _ what: String) throws -> [Int] {
            try text.split(separator: ",").map { item in
                guard let n = Int(item), (1...1024).contains(n) else { throw ValidationError("\(what) must be 1...1024, not '\(item)'") }
                return n
            }
        }
        let clientList = try numbers(clients, "clients"), depthList = try numbers(pipeline, "pipeline")
        var target = port
        var store: Store?
        var server: ZKServer?
        let root = FilePath(dir)
        if target == nil {
            guard let policy = FsyncPolicy(rawValue: appendfsync) else { throw ValidationError("appendfsync must be always, everysec or no") }
            removeTree(root)
            store = try Store.open(directory: root, options: StoreOptions(fsyncPolicy: policy))
            var options = ZKServerOptions()
            options.port = 0
            server = try ZKServer.start(store: store!, options: options)
            target = server!.port
        }
        defer {
            try? server?.stop()
            try? store?.close()
            if store != nil { removeTree(root) }
        }
        let name = label.isEmpty ? (port == nil ? "cairn-\(appendfsync)" : "\(host):\(port!)") : label
        if !json {
            print("cairn bench zk: \(name), \(count) requests per row, \(valueSize)-byte data")
            print(pad("server", 18) + pad("op", 12) + pad("clients", 8, right: true) + pad("pipeline", 9, right: true)
                  + pad("ops/s", 11, right: true) + pad("p50 ms", 9, right: true) + pad("p99 ms", 9, right: true) + pad("errors", 8, right: true))
        }
        for op in opList {
            for clientCount in clientList {
                for depth in depthList {
                    let r = try ZKLoad.run(host: host, port: target!, operation: op, operations: max(count, clientCount), clients: clientCount, pipeline: depth, valueSize: valueSize, threads: clientThreads)
                    if json {
                        print("{\"server\":\"\(name)\",\"op\":\"\(op.rawValue)\",\"clients\":\(clientCount),\"pipeline\":\(depth),\"ops\":\(r.operations),"
                              + "\"ops_per_sec\":\(String(format: "%.1f", r.opsPerSecond)),\"p50_ms\":\(String(format: "%.3f", r.p50Milliseconds)),"
                              + "\"p99_ms\":\(String(format: "%.3f", r.p99Milliseconds)),\"errors\":\(r.errors)}")
                    } else {
                        print(pad(name, 18) + pad(op.rawValue, 12) + pad("\(clientCount)", 8, right: true) + pad("\(depth)", 9, right: true)
                              + pad(String(format: "%.0f", r.opsPerSecond), 11, right: true) + pad(String(format: "%.3f", r.p50Milliseconds), 9, right: true)
                              + pad(String(format: "%.3f", r.p99Milliseconds), 9, right: true) + pad("\(r.errors)", 8, right: true))
                    }
                    fflush(nil)
                }
            }
        }
    }
}
