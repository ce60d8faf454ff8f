import Cairn
@testable import CairnServer
import CairnTesting
import Foundation
import NIOCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The RESP server's own event loop: tasks and timers as NIO's `EventLoop` promises them, and
/// sockets that send what a slow reader does not take yet, half-close, and close at a stop.
@Suite(.serialized) struct PollLoopTests {
    @Test func tasksFromOtherThreadsRunOnTheLoopInTheOrderEachSentThem() throws {
        let loop = try PollLoop(name: "test")
        defer { loop.stop() }
        let seen = Mutex<[Int: [Int]]>([:])
        let offLoop = Mutex(0)
        let perThread = 2_000
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            for step in 0..<perThread {
                loop.execute {
                    if !loop.inEventLoop { offLoop.withLock { $0 += 1 } }
                    seen.withLock { $0[thread, default: []].append(step) }
                }
            }
        }
        try loop.submit {}.wait()  // (runs after every task queued before it)
        #expect(offLoop.withLock { $0 } == 0)
        seen.withLock { seen in
            for thread in 0..<2 { #expect(seen[thread] == Array(0..<perThread), "thread \(thread)'s tasks in order") }
        }
        #expect(!loop.inEventLoop)
    }

    @Test func scheduledTasksRunAfterTheirDelayAndCancelledOnesNever() throws {
        let loop = try PollLoop(name: "test")
        defer { loop.stop() }
        let started = NIODeadline.now()
        let order = Mutex<[String]>([])
        let late = loop.scheduleTask(in: .milliseconds(60)) { order.withLock { $0.append("late") } }
        let cancelled = loop.scheduleTask(in: .milliseconds(30)) { order.withLock { $0.append("cancelled") } }
        let early = loop.scheduleTask(in: .milliseconds(20)) { order.withLock { $0.append("early") } }
        try loop.submit { cancelled.cancel() }.wait()
        try early.futureResult.wait()
        #expect(NIODeadline.now() - started >= .milliseconds(20))
        try late.futureResult.wait()
        #expect(NIODeadline.now() - started >= .milliseconds(60))
        #expect(throws: EventLoopError.self) { try cancelled.futureResult.wait() }
        #expect(order.withLock { $0 } == ["early", "late"])
        let failing = loop.scheduleTask(in: .milliseconds(1)) { () throws -> Int in throw CairnCLIError("fails") }
        #expect(throws: CairnCLIError.self) { try failing.futureResult.wait() }
    }

    @Test func aReplyLargerThanTheSocketTakesIsSentWholeWhileOthersAreServed() throws {
        let server = try TestServer()
        defer { server.stop() }
        let value = String(repeating: "0123456789abcdef", count: (8 << 20) / 16)  // 8 MiB
        let writer = try RawClient(port: server.port)
        writer.command("SET", "big", value); #expect(writer.reply() == "+OK\r\n")
        let slow = try RawClient(port: server.port)
        slow.command("GET", "big")  // (not read yet: the server's socket fills and waits)
        usleep(100_000)
        let bystander = try RawClient(port: server.port)
        for _ in 0..<3 { bystander.command("PING"); #expect(bystander.reply() == "+PONG\r\n") }
        let reply = slow.reply()
        #expect(reply.utf8.count == value.utf8.count + "$8388608\r\n\r\n".utf8.count)
        #expect(reply == "$\(value.utf8.count)\r\n\(value)\r\n")
        slow.command("PING"); #expect(slow.reply() == "+PONG\r\n", "the connection goes on after the large reply")
    }

    @Test func aClientThatHalfClosesGetsTheRepliesToWhatItSent() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.send(RawClient.encode(["SET", "k", "v"]) + RawClient.encode(["GET", "k"]))
        shutdown(client.fd, Int32(SHUT_WR))
        #expect(client.replies(2) == ["+OK\r\n", "$1\r\nv\r\n"])
        #expect(client.isClosed())
    }

    @Test func stoppingClosesConnectionsAndTheListener() throws {
        let server = try TestServer()
        let client = try RawClient(port: server.port)
        client.command("PING"); #expect(client.reply() == "+PONG\r\n")
        let port = server.port
        server.stop()
        #expect(client.isClosed())
        #expect(throws: (any Error).self) { _ = try BlockingSocket(port: port) }
    }

    @Test func clientInfoNamesThePeerAsRedisDoes() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.command("CLIENT", "INFO")
        let info = client.reply()
        #expect(info.contains(" addr=127.0.0.1:"), "\(info)")
        let port = info.split(separator: " ").first { $0.hasPrefix("addr=") }?.split(separator: ":").last.flatMap { Int($0) }
        #expect(port != nil && port! > 0)
    }
}
