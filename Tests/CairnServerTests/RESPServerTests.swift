import Cairn
@testable import CairnServer
import CairnStorage
import CairnTesting
import Foundation
import MetricsTestKit
import NIOCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The RESP server over real sockets: replies, errors, pipelining, transactions, pub/sub,
/// blocking pops, authentication and hostile input.
@Suite(.serialized) struct RESPServerTests {
    @Test func repliesAndErrorsAreRedis7s() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.command("PING"); #expect(client.reply() == "+PONG\r\n")
        client.command("SET", "k", "v"); #expect(client.reply() == "+OK\r\n")
        client.command("GET", "k"); #expect(client.reply() == "$1\r\nv\r\n")
        client.command("GET", "missing"); #expect(client.reply() == "$-1\r\n")
        client.command("INCR", "k"); #expect(client.reply() == "-ERR value is not an integer or out of range\r\n")
        client.command("RPUSH", "list", "a"); #expect(client.reply() == ":1\r\n")
        client.command("GET", "list"); #expect(client.reply() == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        client.command("GET"); #expect(client.reply() == "-ERR wrong number of arguments for 'get' command\r\n")
        client.command("NOPE", "a", "b"); #expect(client.reply() == "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n")
        client.command("SET", "k", "v", "NX", "XX"); #expect(client.reply() == "-ERR syntax error\r\n")
        client.command("SET", "k", "v", "EX", "0"); #expect(client.reply() == "-ERR invalid expire time in 'set' command\r\n")
        client.command("SET", "t", "v", "PX", "100000"); #expect(client.reply() == "+OK\r\n")
        client.command("PTTL", "t")
        let pttl = Int(client.reply().dropFirst().trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(pttl > 99_000 && pttl <= 100_000)
        client.command("LPOP", "list", "2"); #expect(client.reply() == "*1\r\n$1\r\na\r\n")
        client.command("LPOP", "list", "2"); #expect(client.reply() == "*-1\r\n")
        client.command("HSET", "h", "f", "1"); #expect(client.reply() == ":1\r\n")
        client.command("HGETALL", "h"); #expect(client.reply() == "*2\r\n$1\r\nf\r\n$1\r\n1\r\n")
        client.send("PING inline\r\n"); #expect(client.reply() == "$6\r\ninline\r\n")
        client.send("SET \"with space\" 'it''s'\r\n"); #expect(client.reply() == "-ERR Protocol error: unbalanced quotes in request\r\n")
    }

    @Test func resp3ByHello() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.command("HELLO", "3")
        #expect(client.reply().hasPrefix("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"))
        client.command("HSET", "h", "f", "1"); _ = client.reply()
        client.command("HGETALL", "h"); #expect(client.reply() == "%1\r\n$1\r\nf\r\n$1\r\n1\r\n")
        client.command("GET", "missing"); #expect(client.reply() == "_\r\n")
        client.command("HELLO", "4"); #expect(client.reply() == "-NOPROTO unsupported protocol version\r\n")
    }

    @Test(arguments: [FsyncPolicy.always, .everysec])
    func aPipelineIsAnsweredInOrderAndReadsSeeEarlierWrites(policy: FsyncPolicy) throws {
        let server = try TestServer(policy: policy)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        var pipeline = ""
        for i in 0..<200 { pipeline += RawClient.encode(["INCR", "n"]) + (i % 50 == 0 ? RawClient.encode(["GET", "n"]) : "") }
        client.send(pipeline)
        let replies = client.replies(204)
        #expect(replies.count == 204)
        var expected: [String] = []
        for i in 0..<200 {
            expected.append(":\(i + 1)\r\n")
            if i % 50 == 0 { expected.append("$\(String(i + 1).count)\r\n\(i + 1)\r\n") }
        }
        #expect(replies == expected)
        if policy == .always {
            #expect(server.store.log.durableLogIndex == server.store.log.lastIndex, "every acknowledged write is durable")
            #expect(server.store.log.stats.syncs < 200, "the pipeline's writes shared group commits: \(server.store.log.stats.syncs) syncs")
        }
    }

    /// Over a keyspace large enough for the connection to hint its pipelines' keys to the
    /// store before running them (writes' and reads' apart), mixed commands with and without
    /// keys, and keys present and absent, are answered exactly as without hints.
    @Test(arguments: [FsyncPolicy.always, .no])
    func pipelinesOverALargeKeyspaceAreAnsweredRight(policy: FsyncPolicy) throws {
        let server = try TestServer(policy: policy)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let keys = 17_000
        client.send((0..<keys).map { RawClient.encode(["SET", "key:\($0)", "\($0)"]) }.joined())
        let notOK = client.replies(keys).filter { $0 != "+OK\r\n" }
        let allOK = notOK.isEmpty
        #expect(allOK, "\(notOK.count) replies not OK, as \(notOK.prefix(3))")  // (a failure shows a few, not 17,000)
        #expect(server.store.wantsKeyPathHints)
        var pipeline = ""
        var expected: [String] = []
        func add(_ command: [String], _ reply: String) {
            pipeline += RawClient.encode(command)
            expected.append(reply)
        }
        for i in stride(from: 0, to: keys, by: 499) {
            add(["GET", "key:\(i)"], "$\(String(i).count)\r\n\(i)\r\n")
            add(["INCR", "key:\(i)"], ":\(i + 1)\r\n")
            add(["PING"], "+PONG\r\n")
            add(["GET", "missing:\(i)"], "$-1\r\n")
            add(["LPUSH", "key:\(i)", "x"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
            add(["ECHO", "key:\(i)"], "$\("key:\(i)".count)\r\nkey:\(i)\r\n")
            add(["GET", "key:\(i)"], "$\(String(i + 1).count)\r\n\(i + 1)\r\n")
            add(["DEL", "key:\(i)", "missing:\(i)"], ":1\r\n")
        }
        client.send(pipeline)
        #expect(client.replies(expected.count) == expected)
    }

    /// A pipeline's writes are decided together, as one txn (fewer txns than writes), yet each
    /// stays its own command: its own reply in order, an error in one changes nothing of the
    /// others, a read, a database switch or a large value in between sees or splits them
    /// right, and a batched push wakes a client blocked on the list.
    @Test(arguments: [FsyncPolicy.always, .no])
    func pipelinedWritesShareATxnAndStayIndependent(policy: FsyncPolicy) throws {
        let server = try TestServer(policy: policy)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let waiter = try RawClient(port: server.port)
        client.command("RPUSH", "list", "a"); #expect(client.reply() == ":1\r\n")
        waiter.command("BLPOP", "jobs", "5")
        usleep(100_000)
        let big = String(repeating: "v", count: 70_000)
        var pipeline = ""
        var expected: [String] = []
        var writes = 0
        func add(_ command: [String], _ reply: String, write: Bool = true) {
            pipeline += RawClient.encode(command)
            expected.append(reply)
            if write { writes += 1 }
        }
        let before = server.store.log.lastIndex
        add(["SET", "a", "1"], "+OK\r\n")
        add(["INCR", "a"], ":2\r\n")
        add(["INCR", "list"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        add(["INCR", "a"], ":3\r\n")
        add(["RPUSH", "jobs", "job-1"], ":1\r\n")
        add(["SET", "b", "x"], "+OK\r\n")
        add(["INCR", "b"], "-ERR value is not an integer or out of range\r\n")
        add(["GET", "a"], "$1\r\n3\r\n", write: false)
        add(["SET", "big", big], "+OK\r\n")
        add(["APPEND", "a", "0"], ":2\r\n")
        add(["SELECT", "1"], "+OK\r\n", write: false)
        add(["SET", "a", "db1"], "+OK\r\n")
        add(["SELECT", "0"], "+OK\r\n", write: false)
        add(["SET", "c", "1"], "+OK\r\n")
        add(["SET", "c", "2", "GET"], "$1\r\n1\r\n")
        add(["STRLEN", "big"], ":70000\r\n", write: false)
        add(["GET", "a"], "$2\r\n30\r\n", write: false)
        add(["DEL", "b", "c"], ":2\r\n")
        add(["EXISTS", "b", "c"], ":0\r\n", write: false)
        client.send(pipeline)
        #expect(client.replies(expected.count) == expected)
        #expect(waiter.reply() == "*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n")
        let txns = Int(server.store.log.lastIndex - before)
        #expect(txns > 0 && txns <= writes - 3, "\(txns) txns for \(writes) writes")
        client.command("SELECT", "1"); #expect(client.reply() == "+OK\r\n")
        client.command("GET", "a"); #expect(client.reply() == "$3\r\ndb1\r\n")
    }

    /// Commands run on views of the read buffer; one that must wait (a read behind a held
    /// write, MULTI's queue, anything parsed while a commit is awaited) keeps a copy of its
    /// arguments. Slowed syncs keep the connection waiting while more bytes arrive, in pieces
    /// that split commands anywhere, so a view kept past its call would read moved bytes.
    @Test func commandsThatWaitKeepTheirArgumentsWhileTheBufferMovesOn() throws {
        let server = try TestServer(policy: .always)
        defer { server.stop() }
        server.disk.observeSyncs { _ in usleep(1000) }
        defer { server.disk.observeSyncs(nil) }
        let client = try RawClient(port: server.port)
        var pipeline: [UInt8] = []
        var expected: [String] = []
        for i in 0..<300 {
            let value = "value-\(i)-" + String(repeating: "abcdefgh", count: i % 7)
            pipeline += Array(RawClient.encode(["SET", "key:\(i)", value]).utf8)
            pipeline += Array(RawClient.encode(["GET", "key:\(i)"]).utf8)
            expected += ["+OK\r\n", "$\(value.utf8.count)\r\n\(value)\r\n"]
            if i % 50 == 49 {
                pipeline += Array((RawClient.encode(["MULTI"]) + RawClient.encode(["SET", "m:\(i)", "x\(i)"]) + RawClient.encode(["GET", "key:\(i - 1)"]) + RawClient.encode(["EXEC"])).utf8)
                let earlier = "value-\(i - 1)-" + String(repeating: "abcdefgh", count: (i - 1) % 7)
                expected += ["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n+OK\r\n$\(earlier.utf8.count)\r\n\(earlier)\r\n"]
            }
        }
        var offset = 0
        var piece = 1
        while offset < pipeline.count {  // pieces of 1, 2, ... 97 bytes, then again
            let end = min(pipeline.count, offset + piece)
            client.send(Array(pipeline[offset..<end]))
            offset = end
            piece = piece % 97 + 1
            if piece % 13 == 0 { usleep(200) }
        }
        let replies = client.replies(expected.count)
        #expect(replies.count == expected.count)
        let wrong = zip(replies, expected).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(wrong == nil, "reply \(wrong?.offset ?? 0) was \(wrong?.element.0.debugDescription ?? ""), not \(wrong?.element.1.debugDescription ?? "")")
        #expect(server.store.log.durableLogIndex == server.store.log.lastIndex)
    }

    /// A connection remembers the last command name it resolved (a pipeline mostly repeats
    /// one): names in any case, unknown names and names past the 16 bytes it remembers must
    /// each still resolve on their own.
    @Test func commandNamesResolveInAnyCaseAndOrder() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        let long = "averyveryverylongcommandname"
        for arguments in [["SET", "a", "1"], ["set", "b", "2"], ["sEt", "c", "3"], ["FOO"], ["FOO"], ["GET", "a"], [long], ["GET", "b"], ["get", "c"], ["client", "INFO"]] {
            client.command(arguments)
        }
        let replies = client.replies(10)
        #expect(Array(replies.prefix(9)) == ["+OK\r\n", "+OK\r\n", "+OK\r\n",
                                              "-ERR unknown command 'FOO', with args beginning with: \r\n",
                                              "-ERR unknown command 'FOO', with args beginning with: \r\n", "$1\r\n1\r\n",
                                              "-ERR unknown command '\(long)', with args beginning with: \r\n", "$1\r\n2\r\n", "$1\r\n3\r\n"])
        #expect(replies.last?.contains("cmd=client") == true)
    }

    @Test func multiExecIsOneTxnAndWatchGuardsIt() throws {
        let server = try TestServer(policy: .always)
        defer { server.stop() }
        let a = try RawClient(port: server.port)
        let b = try RawClient(port: server.port)
        let before = server.store.log.lastIndex
        a.command("MULTI"); #expect(a.reply() == "+OK\r\n")
        a.command("SET", "x", "1"); #expect(a.reply() == "+QUEUED\r\n")
        a.command("INCR", "x"); #expect(a.reply() == "+QUEUED\r\n")
        a.command("GET", "x"); #expect(a.reply() == "+QUEUED\r\n")
        a.command("EXEC"); #expect(a.reply() == "*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n")
        #expect(server.store.log.lastIndex == before + 1, "EXEC is one txn")

        a.command("WATCH", "x"); _ = a.reply()
        b.command("SET", "x", "changed"); _ = b.reply()
        a.command("MULTI"); _ = a.reply()
        a.command("SET", "x", "mine"); _ = a.reply()
        a.command("EXEC"); #expect(a.reply() == "*-1\r\n", "a watched key changed: nothing ran")
        b.command("GET", "x"); #expect(b.reply() == "$7\r\nchanged\r\n")

        a.command("MULTI"); _ = a.reply()
        a.command("NOPE"); _ = a.reply()
        a.command("EXEC"); #expect(a.reply() == "-EXECABORT Transaction discarded because of previous errors.\r\n")
        a.command("EXEC"); #expect(a.reply() == "-ERR EXEC without MULTI\r\n")
    }

    /// Each WATCHed key is judged in the database it was watched in, across SELECTs (as Redis
    /// does): a change to a key of the same name in another database does not abort the EXEC.
    @Test func watchedKeysKeepTheirDatabaseAcrossSelect() throws {
        let server = try TestServer()
        defer { server.stop() }
        let a = try RawClient(port: server.port)
        let b = try RawClient(port: server.port)
        /// `a` WATCHes k in each of `watched` (SELECTing each), ends in `selected`; `b` runs
        /// `change` on k in database `changed`; then `a`'s EXEC of one SET answers.
        func exec(watched: [Int], selected: Int, changed: Int, _ change: String..., step: Int) -> String {
            for db in watched {
                a.command("SELECT", "\(db)"); _ = a.reply()
                a.command("WATCH", "k"); _ = a.reply()
            }
            a.command("SELECT", "\(selected)"); _ = a.reply()
            b.command("SELECT", "\(changed)"); _ = b.reply()
            b.command(change); _ = b.reply()
            a.command("MULTI"); _ = a.reply()
            a.command("SET", "done", "\(step)"); _ = a.reply()
            a.command("EXEC")
            return a.reply()
        }
        #expect(exec(watched: [1, 2], selected: 2, changed: 3, "SET", "k", "elsewhere", step: 1) == "*1\r\n+OK\r\n",
                "k changed in a database nobody watched: EXEC runs")
        #expect(exec(watched: [1, 2], selected: 2, changed: 2, "SET", "k", "changed", step: 2) == "*-1\r\n",
                "k of the second watch's database changed: nothing ran")
        #expect(exec(watched: [2], selected: 0, changed: 2, "DEL", "k", step: 3) == "*-1\r\n",
                "k of database 2 changed while database 0 was selected")
        a.command("SELECT", "2"); _ = a.reply()
        a.command("GET", "done"); #expect(a.reply() == "$1\r\n1\r\n")
    }

    @Test func pubSubDeliversToChannelsAndPatterns() throws {
        let server = try TestServer()
        defer { server.stop() }
        let subscriber = try RawClient(port: server.port)
        let publisher = try RawClient(port: server.port)
        subscriber.command("SUBSCRIBE", "news")
        #expect(subscriber.reply() == "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n")
        subscriber.command("PSUBSCRIBE", "n*")
        #expect(subscriber.reply() == "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:2\r\n")
        subscriber.command("GET", "x")
        #expect(subscriber.reply().hasPrefix("-ERR Can't execute 'get'"))
        publisher.command("PUBLISH", "news", "hello")
        #expect(publisher.reply() == ":2\r\n")
        let messages = subscriber.replies(2)
        #expect(messages.contains("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"))
        #expect(messages.contains("*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"))
    }

    @Test func blpopWaitsForAPushAndTimesOut() throws {
        let server = try TestServer(policy: .always)
        defer { server.stop() }
        let waiter = try RawClient(port: server.port)
        let pusher = try RawClient(port: server.port)
        waiter.command("BLPOP", "jobs", "0.2")
        #expect(waiter.reply() == "*-1\r\n", "timed out")
        waiter.command("BLPOP", "jobs", "5")
        usleep(100_000)
        pusher.command("RPUSH", "jobs", "job-1"); #expect(pusher.reply() == ":1\r\n")
        #expect(waiter.reply() == "*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n")
        pusher.command("LLEN", "jobs"); #expect(pusher.reply() == ":0\r\n")
    }

    @Test func passwordsAreRequiredAndCheckedInConstantTime() throws {
        let server = try TestServer(password: "s3cret")
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        client.command("GET", "k"); #expect(client.reply() == "-NOAUTH Authentication required.\r\n")
        client.command("AUTH", "wrong"); #expect(client.reply() == "-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        client.command("AUTH", "s3cret"); #expect(client.reply() == "+OK\r\n")
        client.command("GET", "k"); #expect(client.reply() == "$-1\r\n")
        let other = try RawClient(port: server.port)
        other.command("HELLO", "3", "AUTH", "default", "s3cret"); #expect(other.reply().hasPrefix("%7"))
    }

    @Test func malformedInputGetsAProtocolErrorAndOnlyThatClientIsClosed() throws {
        var limits = RESPLimits()
        limits.maxBulkLength = 1024
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let bystander = try RawClient(port: server.port)
        for (input, error) in [
            ("*2\r\n$3\r\nGET\r\n$9999\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
            ("*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
            ("*1\r\n+GET\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"),
        ] {
            let client = try RawClient(port: server.port)
            client.command("PING"); #expect(client.reply() == "+PONG\r\n")
            client.send(input)
            #expect(client.reply() == error)
            #expect(client.isClosed())
        }
        bystander.command("PING"); #expect(bystander.reply() == "+PONG\r\n", "other clients never notice")
    }

    @Test func tooManyClientsAreTurnedAway() throws {
        let server = try TestServer(maxClients: 2)
        defer { server.stop() }
        let a = try RawClient(port: server.port), b = try RawClient(port: server.port)
        a.command("PING"); _ = a.reply()
        b.command("PING"); _ = b.reply()
        let c = try RawClient(port: server.port)
        #expect(c.reply() == "-ERR max number of clients reached\r\n")
    }

    @Test func redisCliRedisBenchmarkAndRedisPyWorkUnchanged() throws {
        let server = try TestServer(policy: .always)
        defer { server.stop() }
        let port = String(server.port)
        guard let cli = try runTool("/usr/bin/redis-cli", ["-p", port, "SET", "greeting", "hello"]) else {
            print("skipping redis-cli, redis-benchmark: not installed (apt-get install redis-tools)")
            return
        }
        #expect(cli.output == "OK\n")
        #expect(try runTool("/usr/bin/redis-cli", ["-p", port, "GET", "greeting"])?.output == "hello\n")
        #expect(try runTool("/usr/bin/redis-cli", ["-p", port, "-3", "HELLO", "3"])?.status == 0)
        let benchmark = try runTool("/usr/bin/redis-benchmark", ["-p", port, "-t", "set,get,incr,lpush,lpop", "-n", "2000", "-c", "10", "-q"])
        #expect(benchmark?.status == 0)
        #expect(benchmark?.output.contains("SET:") == true && benchmark?.output.contains("LPOP:") == true, "\(benchmark?.output ?? "")")
        let script = """
            import redis
            r = redis.Redis(host='127.0.0.1', port=\(port))
            assert r.ping()
            r.set('py', 'value', ex=100)
            assert r.get('py') == b'value' and 0 < r.ttl('py') <= 100
            p = r.pipeline(transaction=True)
            p.incr('counter').incr('counter').get('counter')
            assert p.execute() == [1, 2, b'2']
            r.rpush('q', 'a', 'b'); assert r.lrange('q', 0, -1) == [b'a', b'b']
            r.hset('h', mapping={'a': '1', 'b': '2'}); assert r.hgetall('h') == {b'a': b'1', b'b': b'2'}
            print('redis-py ok')
            """
        guard let python = try runTool("/usr/bin/env", ["python3", "-c", "import redis"]), python.status == 0 else {
            print("skipping redis-py: the redis package is not installed (pip install redis)")
            return
        }
        let result = try runTool("/usr/bin/env", ["python3", "-c", script])
        #expect(result?.output.contains("redis-py ok") == true, "\(result?.output ?? "")")
    }

    /// Under `always`, the writes of many clients decided in one tick (64 requests or more) are
    /// synced by the log's flusher while the loop reads on, fewer by the loop itself (see
    /// `LoopCommitter`), and each reply still waits for its own txn's sync: the n-th INCR is
    /// txn `base + n`, so the log must be durable through it when its reply arrives. Syncs are
    /// slowed, so an early reply would be seen, and so that requests gather behind a sync on
    /// the loop into a tick large enough for the flusher.
    @Test func incrsOfManyClientsAreAnsweredOnlyOnceDurable() throws {
        let metrics = TestMetrics()
        let server = try TestServer(policy: .always, maxClients: 200, metrics: metrics)
        defer { server.stop() }
        server.disk.observeSyncs { _ in usleep(500) }
        defer { server.disk.observeSyncs(nil) }
        let clients = try (0..<160).map { _ in try RawClient(port: server.port) }  // (80 on each of its 2 loops)
        let base = server.store.log.lastIndex
        var counts: Set<Int> = []
        let rounds = 15
        for _ in 0..<rounds {
            for client in clients { client.command("INCR", "n") }
            for client in clients {
                let reply = client.reply()
                let durable = server.store.log.durableLogIndex
                guard reply.hasPrefix(":"), let count = Int(reply.dropFirst().trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    Issue.record("INCR answered \(reply.debugDescription)")
                    continue
                }
                #expect(base + UInt64(count) <= durable, "INCR number \(count) was answered before its sync (durable through \(durable - base))")
                counts.insert(count)
            }
        }
        #expect(counts == Set(1...(rounds * clients.count)), "every INCR answered once, with its own count")
        let byFlusher = try metrics.expectCounter("cairn_resp_group_commits", [("synced_by", "flusher")]).totalValue
        #expect(byFlusher > 0, "many clients' writes in a tick are synced by the flusher")
        let byLoop = try metrics.expectCounter("cairn_resp_group_commits", [("synced_by", "loop")]).totalValue
        #expect(byLoop > 0, "a few clients' writes in a tick are synced by the loop")
    }

    @Test func metricsCountCommandsAndTimeSyncsAndCommitWaits() throws {
        let metrics = TestMetrics()
        let server = try TestServer(policy: .always, metrics: metrics)
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        for i in 0..<20 { client.command("SET", "k\(i)", "v"); _ = client.reply() }
        client.command("GET", "k1"); _ = client.reply()
        #expect(try metrics.expectCounter("cairn_resp_commands").totalValue == 21)
        // Counted once a batch, but INFO sees every command so far, itself included.
        client.command("INFO", "stats")
        #expect(client.reply().contains("total_commands_processed:22\r\n"))
        // A client that leaves while blocked in BLPOP never reaches a flush: counted as it goes.
        do {
            let blocked = try RawClient(port: server.port)
            blocked.command("PING"); _ = blocked.reply()
            blocked.command("BLPOP", "nothing", "0")
            usleep(100_000)
        }  // (closed here)
        // 22, then PING and BLPOP, then each INFO: once the close is seen, exactly 24 + INFOs.
        var counted = "", infos = 0
        let deadline = Date().addingTimeInterval(5)
        repeat {
            client.command("INFO", "stats")
            infos += 1
            counted = client.reply()
            if counted.contains("total_commands_processed:\(24 + infos)\r\n") { break }
            usleep(10_000)
        } while Date() < deadline
        #expect(counted.contains("total_commands_processed:\(24 + infos)\r\n"), "the BLPOP of the client that left is counted")
        #expect(try metrics.expectTimer("cairn_log_fsync").values.count >= 1)
        #expect(try metrics.expectRecorder("cairn_log_batch_records").values.reduce(0, +) >= 20)
        #expect(try metrics.expectTimer("cairn_resp_commit_wait").values.count >= 1)
    }

    @Test func protectedModeTellsLoopbackFromOtherHosts() throws {
        #expect(RESPConnection.isLoopback(ip: "127.0.0.1"))
        #expect(RESPConnection.isLoopback(ip: "127.3.2.1"))
        #expect(RESPConnection.isLoopback(ip: "::1"))
        #expect(RESPConnection.isLoopback(ip: "::ffff:127.0.0.1"))
        #expect(!RESPConnection.isLoopback(ip: "10.1.2.3"))
        #expect(!RESPConnection.isLoopback(ip: "2001:db8::1"))
        #expect(!RESPConnection.isLoopback(ip: "::ffff:10.1.2.3"))
    }
}
