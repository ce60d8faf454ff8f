import Cairn
import CairnStorage
import CairnTesting
import SystemPackage
import Testing

/// `cairn snapshot`, `cairn inspect` and the snapshot half of `cairn check`, run as a user runs them.
@Suite struct SnapshotCommandTests {
    func makeStore(_ directory: TemporaryDirectory) throws {
        let store = try Store.open(directory: directory.path, options: StoreOptions(fsyncPolicy: .no, segmentSize: 8 << 10, activeExpiry: false))
        for i in 0..<400 { try store.set(Bytes("user:\(i)"), Bytes("profile \(i)")) }
        try store.rpush("jobs", "a", "b")
        _ = try store.hset("config", [("mode", "fast")])
        try store.set("binary", Bytes([0, 0x22, 0xFF]))
        try store.create("/services")
        try store.create("/services/api", data: "10.0.0.7")
        try store.close()
    }

    @Test func snapshotThenCheckThenInspect() throws {
        let directory = TemporaryDirectory("snapshot-cli")
        defer { directory.cleanup() }
        try makeStore(directory)
        let segments = try PosixFileSystem().listDirectory(directory.path).filter { $0.hasSuffix(".seg") }.count
        #expect(segments >= 3)

        let snapshot = try runCairn(["snapshot", directory.path.string])
        #expect(snapshot.status == 0, "\(snapshot.output)")
        #expect(snapshot.output.contains("403 keys, 3 znodes, 0 sessions"), "\(snapshot.output)")
        #expect(snapshot.output.contains("\(segments - 1) log segment(s) compacted"), "\(snapshot.output)")

        let check = try runCairn(["check", directory.path.string])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("checksums and counts OK") && check.output.contains("without a gap"), "\(check.output)")

        let inspect = try runCairn(["inspect", directory.path.string, "--keys", "--znodes", "--limit", "2"])
        #expect(inspect.status == 0, "\(inspect.output)")
        #expect(inspect.output.contains("403 keys (401 strings, 1 lists, 1 hashes; 0 with a TTL), 3 znodes"), "\(inspect.output)")
        #expect(inspect.output.contains("\"binary\"  string  no ttl"), "\(inspect.output)")
        #expect(inspect.output.contains("\\x00\\\"\\xff"), "binary bytes are escaped: \(inspect.output)")
        #expect(inspect.output.contains("/services  persistent"), "\(inspect.output)")

        // Only the frame's XXH32 damaged: check fails and says the store still loads the file.
        let name = try #require(PosixFileSystem().listDirectory(directory.path).first { $0.hasPrefix("snapshot-") })
        let file = try PosixFileSystem().open(directory.path.appending(name), create: false)
        let checksumAt = try file.size() - 16 - 2  // (before the 16-byte size frame)
        let intact = try file.readBytes(at: checksumAt, count: 1)
        try [intact[0] ^ 0x04].withUnsafeBytes { try file.write($0, at: checksumAt) }
        let badFrameChecksum = try runCairn(["check", directory.path.string])
        #expect(badFrameChecksum.status == 1, "\(badFrameChecksum.output)")
        #expect(badFrameChecksum.output.contains("\(name)  DAMAGED") && badFrameChecksum.output.contains("the store still loads it")
                && badFrameChecksum.output.contains("without a gap"), "\(badFrameChecksum.output)")
        try intact.withUnsafeBytes { try file.write($0, at: checksumAt) }

        // A damaged snapshot: check says which file and fails; with its log gone, so does opening.
        var bytes = try file.readBytes(at: 40, count: 1)
        bytes[0] ^= 0x04
        try bytes.withUnsafeBytes { try file.write($0, at: 40) }
        try file.close()
        let damaged = try runCairn(["check", directory.path.string])
        #expect(damaged.status == 1, "\(damaged.output)")
        #expect(damaged.output.contains("\(name)  DAMAGED"), "\(damaged.output)")
    }
}
