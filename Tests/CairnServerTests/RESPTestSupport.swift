import Cairn
import CairnServer
import CairnStorage
import CairnTesting
import CoreMetrics
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A store behind a RESP server on a free loopback port, on a simulated disk; stopped by `stop()`.
final class TestServer {
    let store: Store
    let server: RESPServer
    let disk = SimulatedFileSystem()
    var port: Int { server.port }

    init(policy: FsyncPolicy = .everysec, password: String? = nil, limits: RESPLimits = RESPLimits(), maxClients: Int = 100, metrics: (any MetricsFactory)? = nil) throws {
        var storeOptions = StoreOptions(fsyncPolicy: policy, fileSystem: disk)
        storeOptions.metrics = metrics
        store = try Store.open(directory: "/store", options: storeOptions)
        var options = RESPServerOptions()
        options.metrics = metrics
        options.port = 0
        options.password = password
        options.limits = limits
        options.maxClients = maxClients
        server = try RESPServer.start(store: store, options: options, threads: 2)
    }

    func stop() {
        try? server.stop()
        try? store.close()
    }
}

/// A raw RESP client over a blocking socket: sends bytes, reads replies, with a time limit.
final class RawClient {
    let socket: BlockingSocket
    var fd: Int32 { socket.fd }

    init(port: Int) throws {
        socket = try BlockingSocket(port: port, noDelay: false)
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) { socket.send(bytes) }

    /// A command as a RESP array of bulk strings.
    func command(_ arguments: String...) { command(arguments) }
    func command(_ arguments: [String]) { send(Self.encode(arguments)) }

    static func encode(_ arguments: [String]) -> String {
        "*\(arguments.count)\r\n" + arguments.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
    }

    private var buffer: [UInt8] = []

    /// Reads until `count` complete replies are buffered (or the 5 s timeout); returns their raw text.
    func replies(_ count: Int) -> [String] {
        var result: [String] = []
        while result.count < count {
            if let (reply, used) = Self.parseOne(buffer) {
                result.append(String(decoding: buffer[0..<used], as: UTF8.self))
                buffer.removeFirst(used)
                _ = reply
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
        }
        return result
    }

    func reply() -> String { replies(1).first ?? "<none>" }

    /// True once the server has closed the connection (reads return 0).
    func isClosed() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return false }
        }
    }

    /// The length of one complete RESP reply at the start of `bytes`, or nil.
    static func parseOne(_ bytes: [UInt8]) -> (Int, Int)? {
        func line(_ from: Int) -> (String, Int)? {
            var i = from
            while i + 1 < bytes.count {
                if bytes[i] == 13 && bytes[i + 1] == 10 { return (String(decoding: bytes[from..<i], as: UTF8.self), i + 2) }
                i += 1
            }
            return nil
        }
        func value(_ at: Int) -> Int? {
            guard at < bytes.count, let (text, next) = line(at + 1) else { return nil }
            switch bytes[at] {
            case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: ","), UInt8(ascii: "#"): return next
            case UInt8(ascii: "$"):
                guard let n = Int(text) else { return nil }
                if n < 0 { return next }
                return bytes.count >= next + n + 2 ? next + n + 2 : nil
            case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"):
                guard var n = Int(text) else { return nil }
                if n < 0 { return next }
                if bytes[at] == UInt8(ascii: "%") { n *= 2 }
                var position = next
                for _ in 0..<n { guard let after = value(position) else { return nil }; position = after }
                return position
            default: return nil
            }
        }
        guard let end = value(0) else { return nil }
        return (0, end)
    }
}

/// Runs a program with arguments; nil when it is not installed.
func runTool(_ path: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String)? {
    guard FileManager.default.isExecutableFile(atPath: path) else { return nil }
    return try runProgram(URL(fileURLWithPath: path), arguments, input: input)
}
