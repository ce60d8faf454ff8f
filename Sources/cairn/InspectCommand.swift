import ArgumentParser
import Cairn
import CairnStorage
import SystemPackage

/// `cairn inspect DIR`: what a data directory holds, read-only.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Summarise a data directory (snapshots, log, counts per kind); optionally dump keys and znodes.",
        discussion: "Read-only: takes no lock and changes nothing, so a live directory can be inspected."
    )

    @Argument(help: "The data directory.")
    var directory: String

    @Flag(help: "Dump every key: type, TTL and a preview of the value.")
    var keys = false

    @Flag(help: "Dump every znode: path, kind, version, owner and a preview of the data.")
    var znodes = false

    @Option(help: "Dump at most this many of each (0: no limit).")
    var limit = 0

    func run() throws {
        let fs = PosixFileSystem()
        let path = FilePath(directory)
        guard fs.fileExists(path) else {
            print("error: \(directory) does not exist")
            throw ExitCode(2)
        }
        do {
            try summarise(path, fs)
        } catch {
            print("error: \(error)")
            throw ExitCode(2)
        }
    }

    private func summarise(_ path: FilePath, _ fs: PosixFileSystem) throws {
        print("Directory \(directory)")
        let manifest = try Manifest.read(directory: path, fileSystem: fs)
        if let manifest {
            print("MANIFEST: snapshots \(manifest.snapshots.map(String.init).joined(separator: ", ")) (newest first)")
            for index in manifest.snapshots {
                let file = path.appending(SnapshotFormat.fileName(index: index))
                do {
                    let progress = Progress(label: "reading \(SnapshotFormat.fileName(index: index))")
                    let (state, stats) = try SnapshotFile.read(file, fileSystem: fs)
                    progress.finish()
                    print("  \(stats.file): index \(stats.header.index), taken at \(stats.header.time) ms, "
                          + String(format: "%@ content, %@ on disk, compression ratio %.2f, read in %.2f s",
                                   formatBytes(stats.contentBytes), formatBytes(stats.fileBytes), stats.compressionRatio, stats.seconds))
                    print("    \(describe(state))")
                } catch {
                    print("  \(SnapshotFormat.fileName(index: index)): DAMAGED: \(error)")
                }
            }
        } else {
            print("MANIFEST: none (no snapshot; the log starts at index 1)")
        }
        let segments = try LogDirectoryScan.run(directory: path, fileSystem: fs)
        let logBytes = segments.segments.reduce(0) { $0 + $1.scan.validEnd }
        print("log: \(segments.segments.count) segment(s), \(segments.recordCount) records, indexes "
              + "\(segments.firstIndex.map(String.init) ?? "-")...\(segments.lastValidIndex.map(String.init) ?? "-"), \(formatBytes(logBytes)) of records")
        let progress = Progress(label: "recovering")
        let (state, index, notes) = try Store.readState(directory: path, fileSystem: fs)
        progress.finish()
        for note in notes { print("note: \(note)") }
        print("state at index \(index): \(describe(state))")
        if keys { dumpKeys(state) }
        if znodes { dumpNodes(state) }
    }

    private func describe(_ state: StoreState) -> String {
        var strings = 0, lists = 0, hashes = 0, withTTL = 0
        for (_, entry) in state.keyspace.entries {
            switch entry.value {
            case .string: strings += 1
            case .list: lists += 1
            case .hash: hashes += 1
            }
            if entry.expiresAt != 0 { withTTL += 1 }
        }
        var kinds = [NodeKind: Int]()
        for (_, node) in state.tree.nodes { kinds[node.kind, default: 0] += 1 }
        let others = state.keyCount - state.keyspace.count
        return "\(state.keyspace.count) keys (\(strings) strings, \(lists) lists, \(hashes) hashes; \(withTTL) with a TTL)"
            + (others > 0 ? " in database 0 and \(others) in databases 1-15" : "") + ", "
            + "\(state.tree.count) znodes (\(kinds[.persistent] ?? 0) persistent, \(kinds[.ephemeral] ?? 0) ephemeral, "
            + "\(kinds[.container] ?? 0) container, \(kinds[.ttl] ?? 0) TTL), \(state.tree.sessions.count) sessions"
    }

    private func dumpKeys(_ state: StoreState) {
        print("keys:")
        for (n, (key, entry)) in state.keyspace.entries.sorted(by: { $0.key < $1.key }).enumerated() {
            if limit > 0 && n >= limit { print("  ... (\(state.keyspace.count - limit) more)"); break }
            let ttl = entry.expiresAt == 0 ? "no ttl" : "expires at \(entry.expiresAt) ms"
            let value: String
            switch entry.value {
            case .string(let bytes): value = preview(bytes)
            case .list(let list): value = "[" + list.prefix(5).map(preview).joined(separator: ", ") + (list.count > 5 ? ", ... \(list.count) elements]" : "]")
            case .hash(let hash): value = "{" + hash.prefix(5).map { "\(preview($0.key)): \(preview($0.value))" }.joined(separator: ", ") + (hash.count > 5 ? ", ... \(hash.count) fields}" : "}")
            }
            print("  \(preview(key))  \(entry.value.typeName)  \(ttl)  version \(entry.version)  \(value)")
        }
    }

    private func dumpNodes(_ state: StoreState) {
        print("znodes:")
        for (n, (path, node)) in state.tree.nodes.sorted(by: { $0.key < $1.key }).enumerated() {
            if limit > 0 && n >= limit { print("  ... (\(state.tree.count - limit) more)"); break }
            let owner = node.kind == .ephemeral ? "  session 0x\(String(node.stat.ephemeralOwner, radix: 16))" : ""
            print("  \(path)  \(node.kind)  version \(node.stat.version)  cversion \(node.stat.cversion)  mzxid \(node.stat.mzxid)\(owner)  \(preview(node.data))")
        }
    }

    /// Quoted, printable ASCII as is, other bytes as \xHH; long values cut at 64 bytes.
    private func preview(_ bytes: Bytes) -> String {
        var text = "\""
        for byte in bytes.storage.prefix(64) {
            switch byte {
            case 0x22, 0x5C: text += "\\" + String(UnicodeScalar(byte))
            case 0x20...0x7E: text += String(UnicodeScalar(byte))
            default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return text + (bytes.count > 64 ? "\"... (\(bytes.count) bytes)" : "\"")
    }
}
