import Cairn
import CairnServer
import CairnStorage
import CairnTesting
import Foundation
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cairn serve` with real ZooKeeper clients (kazoo, zkCli.sh) and a crash drill: KV writes and
/// znode writes to the one store survive `kill -9` together.
@Suite(.serialized) struct ZooKeeperEndToEndTests {
    /// Tests/ZooKeeperClients, beside this file's folder.
    static let clients = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ZooKeeperClients")

    func serve(_ directory: TemporaryDirectory, policy: String = "always") throws -> (ServeProcess, Int) {
        let serve = try ServeProcess(arguments: ["serve", "--dir", directory.path.string, "--resp-port", "0", "--zk-port", "0", "--appendfsync", policy])
        guard let zkPort = serve.zkPort else {
            serve.kill9()
            throw CairnCLIError("cairn serve reported no ZooKeeper port")
        }
        return (serve, zkPort)
    }

    @Test func keysAndZnodesSurviveAKillTogether() throws {
        let directory = TemporaryDirectory("zk-kill")
        defer { directory.cleanup() }
        var acknowledged = 0
        for round in 0..<3 {
            let (serve, zkPort) = try serve(directory)
            let kv = try RawClient(port: serve.respPort)
            let zk = try ZKRawClient(port: zkPort)
            try zk.connect()
            if round == 0 { _ = try zk.create("/drill") }
            // A key and a znode per step, each acknowledged before the next; at most 5000 steps,
            // killed after about 300 ms.
            let killer = DispatchWorkItem { kill(serve.process.processIdentifier, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300), execute: killer)
            var i = acknowledged
            while i < acknowledged + 5000 {
                kv.command("SET", "key:\(i)", "\(i)")
                guard kv.reply() == "+OK\r\n" else { break }
                guard let created = try? zk.create("/drill/n\(i)", "\(i)"), created.err == 0 else { break }
                i += 1
            }
            serve.process.waitUntilExit()
            #expect(serve.process.terminationReason == .uncaughtSignal, "round \(round): the server was killed")
            acknowledged = i
        }
        #expect(acknowledged > 0)
        let store = try Store.open(directory: directory.path, options: StoreOptions(activeExpiry: false))
        defer { try? store.close() }
        var missing: [String] = []
        for i in 0..<acknowledged {
            if (try? store.get(Bytes("key:\(i)"))) != Bytes("\(i)") { missing.append("key:\(i)") }
            if (try? store.getData("/drill/n\(i)").data) != Bytes("\(i)") { missing.append("/drill/n\(i)") }
        }
        #expect(missing.isEmpty, "acknowledged writes lost after kill -9: \(missing.prefix(10))")
    }

    /// Sessions outlive a restart (their passwords come from DIR/zk-session.key): a client that
    /// reconnects within its timeout keeps its session and its ephemerals, as with ZooKeeper.
    @Test func aSessionResumesAfterARestart() throws {
        let directory = TemporaryDirectory("zk-restart")
        defer { directory.cleanup() }
        let (first, firstPort) = try serve(directory)
        let client = try ZKRawClient(port: firstPort)
        let (timeout, session, password) = try client.connect(timeout: 30_000)
        #expect(try client.create("/mine", flags: 1).err == 0)
        first.terminate()
        let key = FileManager.default.contents(atPath: directory.path.appending("zk-session.key").string)
        #expect(key?.count == 32)

        let (second, secondPort) = try serve(directory)
        defer { second.kill9() }
        let again = try ZKRawClient(port: secondPort)
        let resumed = try again.connect(timeout: 30_000, session: session, password: password)
        #expect(resumed.session == session)
        #expect(resumed.timeout == timeout)
        #expect(try again.call(.exists, .exists(path: "/mine", watch: false)).err == 0)
        // A wrong password is still refused after the restart.
        let forged = try ZKRawClient(port: secondPort)
        #expect(try forged.connect(session: session, password: [UInt8](repeating: 1, count: 16)).timeout == 0)
    }

    @Test func zkPortOffRunsNoZooKeeperListener() throws {
        let directory = TemporaryDirectory("zk-off")
        defer { directory.cleanup() }
        let serve = try ServeProcess(arguments: ["serve", "--dir", directory.path.string, "--resp-port", "0", "--zk-port", "off"])
        defer { serve.kill9() }
        #expect(serve.zkPort == nil)
        let bad = try runCairn(["serve", "--dir", directory.path.string, "--zk-port", "twenty"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("zk-port must be a port number or off, not 'twenty'"), "\(bad.output)")
    }

    /// `cairn bench zk` against an in-process listener: every operation runs, without errors.
    @Test func theLoadGeneratorRunsEveryOperation() throws {
        let directory = TemporaryDirectory("zk-bench")
        defer { directory.cleanup() }
        let result = try runCairn(["bench", "zk", "--count", "300", "--clients", "3", "--pipeline", "1,4", "--client-threads", "2",
                                   "--appendfsync", "no", "--dir", directory.path.appending("data").string, "--json"])
        #expect(result.status == 0, "\(result.output)")
        let rows = result.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(rows.count == 12, "\(result.output)")  // 6 operations × 2 pipeline depths
        #expect(rows.allSatisfy { $0.contains("\"errors\":0") && $0.contains("\"ops\":300") }, "\(result.output)")
    }

    @Test func kazooDrivesEveryOperationAndTheRecipes() throws {
        guard let check = try runTool("/usr/bin/env", ["python3", "-c", "import kazoo"]), check.status == 0 else {
            print("skipping kazoo: python3 or the kazoo package is missing (pip install kazoo; scripts/install-deps does it)")
            return
        }
        try runClientScript("python3", "kazoo_e2e.py")
    }

    @Test func zkCliDrivesEveryCommand() throws {
        let zkCli = "/usr/share/zookeeper/bin/zkCli.sh"
        guard FileManager.default.isExecutableFile(atPath: zkCli), (try runTool("/usr/bin/env", ["java", "-version"]))?.status == 0 else {
            print("skipping zkCli.sh: Debian's zookeeper package (and Java) is not installed (scripts/install-deps installs it)")
            return
        }
        try runClientScript("bash", "zkcli_e2e.sh")
    }

    /// Runs a script of Tests/ZooKeeperClients against a fresh `cairn serve` (at most 180 s):
    /// it must exit 0 and report its checks passed.
    func runClientScript(_ interpreter: String, _ name: String) throws {
        let directory = TemporaryDirectory("zk-client")
        defer { directory.cleanup() }
        let (serve, zkPort) = try serve(directory, policy: "everysec")
        defer { serve.kill9() }
        let script = Self.clients.appendingPathComponent(name).path
        let result = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["timeout", "180", interpreter, script, "127.0.0.1:\(zkPort)"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("checks passed"), "\(result.output)")
        print(String(result.output.split(separator: "\n").last ?? Substring("")))
    }
}
