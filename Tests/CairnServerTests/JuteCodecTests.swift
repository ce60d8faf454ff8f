import Cairn
import CairnServer
import Foundation
import Testing

/// The ZooKeeper client protocol's records (zookeeper.jute): round trips, byte layouts taken
/// from the jute definitions, and refusal of damaged or hostile frames.
@Suite struct JuteCodecTests {
    static let samples: [(ZKOpCode, ZKRequest)] = [
        (.create, .create(path: "/app", data: Array("config".utf8), acl: [.open], flags: 0, ttl: nil)),
        (.create2, .create(path: "/app/lock-", data: [], acl: [ZKACL(perms: 1, scheme: "digest", id: "u:hash")], flags: 3, ttl: nil)),
        (.createTTL, .create(path: "/t", data: [1, 2], acl: [.open], flags: 5, ttl: 60_000)),
        (.createContainer, .create(path: "/c", data: [], acl: [.open], flags: 4, ttl: nil)),
        (.delete, .delete(path: "/app", version: -1)),
        (.exists, .exists(path: "/app", watch: true)),
        (.getData, .getData(path: "/app", watch: false)),
        (.setData, .setData(path: "/app", data: Array("v2".utf8), version: 3)),
        (.getACL, .getACL(path: "/")),
        (.setACL, .setACL(path: "/app", acl: [.open], version: 0)),
        (.getChildren2, .getChildren(path: "/app", watch: true)),
        (.sync, .sync(path: "/")),
        (.ping, .ping),
        (.check, .check(path: "/app", version: 7)),
        (.multi, .multi([(.check, .check(path: "/a", version: 1)), (.create, .create(path: "/a/b", data: [], acl: [.open], flags: 0, ttl: nil)),
                         (.delete, .delete(path: "/x", version: -1)), (.setData, .setData(path: "/a", data: [9], version: -1))])),
        (.auth, .auth(type: 0, scheme: "digest", auth: Array("user:pass".utf8))),
        (.setWatches, .setWatches(relativeZxid: 42, data: ["/a"], exist: ["/b"], child: ["/c"], persistent: [], persistentRecursive: [])),
        (.setWatches2, .setWatches(relativeZxid: 42, data: [], exist: [], child: [], persistent: ["/p"], persistentRecursive: ["/r"])),
        (.getEphemerals, .getEphemerals(prefix: "/")),
        (.getAllChildrenNumber, .getAllChildrenNumber(path: "/app")),
        (.addWatch, .addWatch(path: "/app", mode: 1)),
        (.removeWatches, .removeWatches(path: "/app", type: 2)),
        (.closeSession, .closeSession),
    ]

    @Test func everyRequestRoundTrips() throws {
        for (xid, (op, request)) in Self.samples.enumerated() {
            var out = JuteWriter()
            ZKCodec.encode(xid: Int32(xid), op: op, request, into: &out)
            let decoded = try ZKCodec.request(out.bytes)
            #expect(decoded.xid == Int32(xid) && decoded.op == op && decoded.request == request, "\(op)")
        }
    }

    @Test func byteLayoutsFollowTheJuteDefinitions() throws {
        // ConnectRequest {int protocolVersion; long lastZxidSeen; int timeOut; long sessionId; buffer passwd}
        // and the readOnly flag newer clients append.
        var connect = JuteWriter()
        connect.int(0); connect.long(0); connect.int(30_000); connect.long(0); connect.buffer([UInt8](repeating: 0, count: 16)); connect.boolean(false)
        #expect(connect.bytes.count == 4 + 8 + 4 + 8 + 4 + 16 + 1)
        let request = try ZKCodec.connectRequest(connect.bytes)
        #expect(request.timeout == 30_000 && request.password.count == 16 && request.readOnly == false)
        // Old clients send no readOnly byte.
        #expect(try ZKCodec.connectRequest(Array(connect.bytes.dropLast())).readOnly == nil)

        // RequestHeader{xid=1, type=4 getData} + GetDataRequest{path="/a", watch=true}, by hand.
        let getData: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, 0x2F, 0x61, 1]
        let decoded = try ZKCodec.request(getData)
        #expect(decoded.xid == 1 && decoded.op == .getData && decoded.request == .getData(path: "/a", watch: true))

        var stat = Stat()
        stat.czxid = 1; stat.pzxid = 2; stat.version = 3
        var out = JuteWriter()
        ZKCodec.stat(stat, into: &out)
        #expect(out.bytes.count == 68, "Stat: 6 longs and 5 ints")
        #expect(Array(out.bytes[0..<8]) == [0, 0, 0, 0, 0, 0, 0, 1] && Array(out.bytes[60..<68]) == [0, 0, 0, 0, 0, 0, 0, 2])

        // ustring: a length and UTF-8 bytes, -1 for null; read back the same.
        var strings = JuteWriter()
        strings.string("/é"); strings.string(nil); strings.string("")
        #expect(strings.bytes == [0, 0, 0, 3, 0x2F, 0xC3, 0xA9, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        var reader = JuteReader(strings.bytes)
        #expect(try reader.string() == "/é" && reader.string() == nil && reader.string() == "" && reader.remaining == 0)

        var framed = JuteWriter()
        framed.int(7)
        #expect(framed.frame == [0, 0, 0, 4, 0, 0, 0, 7])
    }

    @Test func damagedAndHostileFramesAreRefused() throws {
        var out = JuteWriter()
        ZKCodec.encode(xid: 5, op: .create, .create(path: "/app", data: Array("data".utf8), acl: [.open], flags: 0, ttl: nil), into: &out)
        let bytes = out.bytes
        for cut in 0..<bytes.count {
            #expect(throws: JuteError.self) { try ZKCodec.request(Array(bytes[0..<cut])) }
        }
        #expect(throws: JuteError.self) { try ZKCodec.request(bytes + [0]) }
        #expect(throws: JuteError.self) { try ZKCodec.request([0, 0, 0, 1, 0, 0, 0x30, 0x39]) }  // unknown op 12345
        // A vector claiming a billion ACLs in a few bytes: refused before allocating.
        var hostile = JuteWriter()
        hostile.int(1); hostile.int(ZKOpCode.create.rawValue); hostile.string("/a"); hostile.buffer([]); hostile.int(1_000_000_000)
        #expect(throws: JuteError.self) { try ZKCodec.request(hostile.bytes) }
        // Invalid UTF-8 in a path.
        #expect(throws: JuteError.self) { try ZKCodec.request([0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1, 0xFF, 0]) }
        // Frames: a negative or oversized length closes the connection.
        #expect(ZKCodec.nextFrame([0xFF, 0xFF, 0xFF, 0xFF]) == .invalidLength(-1))
        #expect(ZKCodec.nextFrame([0x00, 0x10, 0x00, 0x00]) == .invalidLength(0x100000))
        #expect(ZKCodec.nextFrame([0, 0, 0, 2, 1]) == .needMore)
        #expect(ZKCodec.nextFrame([0, 0, 0, 2, 1, 2, 3]) == .frame([1, 2], consumed: 6))
    }

    /// Seeds for Fuzz/Corpus/jute: `CAIRN_WRITE_JUTE_SEEDS=$PWD/Fuzz/Corpus/jute swift test --filter JuteCodecTests`.
    @Test func writeSeedsWhenAsked() throws {
        guard let folder = ProcessInfo.processInfo.environment["CAIRN_WRITE_JUTE_SEEDS"] else { return }
        for (i, (op, request)) in Self.samples.enumerated() {
            var out = JuteWriter()
            ZKCodec.encode(xid: Int32(i), op: op, request, into: &out)
            _ = FileManager.default.createFile(atPath: "\(folder)/request-\(i)", contents: Data(out.bytes))
        }
    }
}
