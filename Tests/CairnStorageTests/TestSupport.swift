import CairnStorage
import CairnTesting
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

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
