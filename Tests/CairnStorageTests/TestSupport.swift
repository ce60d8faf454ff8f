import CairnStorage
import CairnTesting
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp for tests on the real disk, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: FilePath
    init(_ name: String = "test") {
        var template = Array("/tmp/cairn-\(name)-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = FilePath(String(cString: template.withUnsafeBufferPointer { $0.baseAddress! }))
    }
    func cleanup() { removeAll(path) }
}

func removeAll(_ path: FilePath) {
    if let names = try? PosixFileSystem().listDirectory(path) {
        for name in names { removeAll(path.appending(name)) }
        rmdir(path.string)
    } else {
        unlink(path.string)
    }
}

/// Collects every record of a log directory (payload copies), by reopening it.
func readAllRecords(_ directory: FilePath, fileSystem: any FileSystem, options: LogOptions = LogOptions()) throws -> (records: [(UInt64, [UInt8])], log: Log) {
    var records: [(UInt64, [UInt8])] = []
    let log = try Log.open(directory: directory, options: options, fileSystem: fileSystem) { record in
        records.append((record.index, Array(record.payload)))
    }
    return (records, log)
}

func payload(_ index: Int, size: Int? = nil) -> [UInt8] {
    let count = size ?? (index * 7) % 300
    return (0..<count).map { UInt8(truncatingIfNeeded: $0 &+ index &* 13) }
}

let dataDirectory: FilePath = "/data"
