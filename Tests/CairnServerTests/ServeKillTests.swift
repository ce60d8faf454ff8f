import Cairn
import CairnStorage
import CairnTesting
import Foundation
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cairn serve` as a user runs it: killed with SIGKILL under a write load in `always` mode,
/// restarted, and every acknowledged write must be there; SIGTERM stops it cleanly.
@Suite(.serialized) struct ServeKillTests {
    /// Starts `cairn serve` on free ports; returns the process and the RESP port it reports.
    func startServe(_ directory: FilePath, _ extra: [String] = []) throws -> (Process, Int) {
        try startServe(arguments: ["serve", "--dir", directory.string, "--resp-port", "0", "--appendfsync", "always"] + extra)
    }

    func startServe(arguments: [String]) throws -> (Process, Int) {
        let serve = try ServeProcess(arguments: arguments + ["--zk-port", "0"])
        return (serve.process, serve.respPort)
    }

    @Test func everyAcknowledgedWriteSurvivesAKill() throws {
        let directory = TemporaryDirectory("serve-kill")
        defer { directory.cleanup() }
        var acknowledged = 0
        for round in 0..<3 {
            let (process, port) = try startServe(directory.path)
            let client = try RawClient(port: port)
            // Writes until killed: at most 20 000 per round, killed after about 300 ms.
            let killer = DispatchWorkItem { kill(process.processIdentifier, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300), execute: killer)
            var i = acknowledged
            while i < acknowledged + 20_000 {
                client.command("SET", "key:\(i)", "\(i)")
                guard client.reply() == "+OK\r\n" else { break }
                i += 1
            }
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the server was killed")
            acknowledged = i
        }
        #expect(acknowledged > 0)
        let (process, port) = try startServe(directory.path)
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let client = try RawClient(port: port)
        var missing: [Int] = []
        for i in 0..<acknowledged {
            client.command("GET", "key:\(i)")
            let expected = "$\(String(i).count)\r\n\(i)\r\n"
            if client.reply() != expected { missing.append(i) }
        }
        #expect(missing.isEmpty, "acknowledged writes lost after kill -9: \(missing.prefix(10))")
    }

    @Test func sigtermStopsCleanly() throws {
        let directory = TemporaryDirectory("serve-term")
        defer { directory.cleanup() }
        let (process, port) = try startServe(directory.path)
        let client = try RawClient(port: port)
        client.command("SET", "k", "v"); #expect(client.reply() == "+OK\r\n")
        process.terminate()  // SIGTERM
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        let store = try Store.open(directory: directory.path, options: StoreOptions(activeExpiry: false))
        #expect(try store.get("k") == "v")
        #expect(store.log.recovery.problem == nil, "a clean stop leaves nothing to repair")
        try store.close()
    }

    /// A SIGTERM sent the moment the ready line is out stops the server cleanly (it was once
    /// lost: the handler was installed after the ready line, asynchronously). Five rounds, each
    /// given 10 s to exit.
    @Test func sigtermRightAfterReadyStopsCleanly() throws {
        let directory = TemporaryDirectory("serve-term-early")
        defer { directory.cleanup() }
        for round in 0..<5 {
            let serve = try ServeProcess(arguments: ["serve", "--dir", directory.path.string, "--resp-port", "0", "--zk-port", "0"])
            kill(serve.process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while serve.process.isRunning && Date() < deadline { usleep(10_000) }
            let stopped = !serve.process.isRunning
            if !stopped { serve.kill9() }
            #expect(stopped, "round \(round): cairn serve was still running 10 s after SIGTERM")
            if stopped { #expect(serve.process.terminationReason == .exit && serve.process.terminationStatus == 0, "round \(round)") }
        }
    }

    @Test func aConfigFileSetsWhatFlagsDoNot() throws {
        let directory = TemporaryDirectory("serve-config")
        defer { directory.cleanup() }
        let config = directory.path.appending("cairn.conf").string
        try """
            # like redis.conf
            dir \(directory.path.appending("data").string)
            appendfsync no
            requirepass "pa ss"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let (process, port) = try startServe(arguments: ["serve", "--config", config, "--resp-port", "0"])
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let client = try RawClient(port: port)
        client.command("PING"); #expect(client.reply() == "-NOAUTH Authentication required.\r\n")
        client.command("AUTH", "pa ss"); #expect(client.reply() == "+OK\r\n")
        client.command("CONFIG", "GET", "appendfsync"); #expect(client.reply() == "*2\r\n$11\r\nappendfsync\r\n$2\r\nno\r\n")

        try "appendfsync sometimes\n".write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try runCairn(["serve", "--config", config, "--dir", directory.path.string])
        #expect(bad.status != 0 && bad.output.contains("sometimes"), "\(bad.output)")
        try "colour blue\n".write(toFile: config, atomically: true, encoding: .utf8)
        let unknown = try runCairn(["serve", "--config", config, "--dir", directory.path.string])
        #expect(unknown.status == 2 && unknown.output.contains("cairn.conf:1: unknown setting 'colour'"), "\(unknown.output)")
    }

    @Test func shutdownStopsCleanlyAndBgsaveWritesASnapshot() throws {
        let directory = TemporaryDirectory("serve-shutdown")
        defer { directory.cleanup() }
        let (process, port) = try startServe(directory.path)
        let client = try RawClient(port: port)
        client.command("SET", "k", "v"); #expect(client.reply() == "+OK\r\n")
        client.command("LASTSAVE"); let before = client.reply()
        client.command("BGSAVE"); #expect(client.reply() == "+Background saving started\r\n")
        // Bounded: up to 5 s for the background snapshot to land.
        let started = Date()
        var snapshots: [String] = []
        while snapshots.isEmpty && Date().timeIntervalSince(started) < 5 {
            snapshots = ((try? PosixFileSystem().listDirectory(directory.path)) ?? []).filter { $0.hasPrefix("snapshot-") && $0.hasSuffix(".lz4") }
            usleep(20_000)
        }
        #expect(snapshots.count == 1, "BGSAVE wrote a snapshot")
        client.command("INFO", "persistence")
        let persistence = client.reply()
        #expect(persistence.contains("aof_enabled:1"))
        // The log's sync figures: how many, how large and how long its batches are.
        for field in ["log_syncs:", "log_mean_batch:", "log_mean_sync_us:", "log_max_sync_us:", "log_group_commit_target:"] {
            #expect(persistence.contains("\r\n\(field)"), "INFO persistence lacks \(field)")
        }
        // The executable runs on mimalloc (linked ahead of libc), and says so as Redis does.
        client.command("INFO", "memory")
        #expect(client.reply().contains("mem_allocator:mimalloc-"))
        client.command("LASTSAVE"); #expect(client.reply().hasPrefix(":") && !before.isEmpty)
        client.command("SHUTDOWN")
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        let store = try Store.open(directory: directory.path, options: StoreOptions(activeExpiry: false))
        #expect(try store.get("k") == "v")
        try store.close()
    }
}
