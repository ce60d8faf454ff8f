import Cairn
import CairnServer
import CairnStorage
import Testing

/// Command by command, the replies and errors Redis 7 documents, over a real socket.
@Suite(.serialized) struct RESPCommandTests {
    /// (command, expected raw reply) in order, on one connection.
    static let script: [([String], String)] = [
        (["SETNX", "s", "1"], ":1\r\n"), (["SETNX", "s", "2"], ":0\r\n"),
        (["GETSET", "s", "3"], "$1\r\n1\r\n"),
        (["SET", "s", "4", "GET"], "$1\r\n3\r\n"),
        (["SET", "s", "5", "XX", "GET"], "$1\r\n4\r\n"),
        (["SET", "nx", "v", "NX", "EX", "100"], "+OK\r\n"), (["TTL", "nx"], ":100\r\n"),
        (["SET", "nx", "w", "KEEPTTL"], "+OK\r\n"), (["TTL", "nx"], ":100\r\n"),
        (["SETEX", "se", "0", "v"], "-ERR invalid expire time in 'setex' command\r\n"),
        (["MSET", "a", "1", "b"], "-ERR wrong number of arguments for 'mset' command\r\n"),
        (["MSET", "a", "1", "b", "2"], "+OK\r\n"), (["MGET", "a", "b", "zz"], "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"),
        (["MSETNX", "a", "9", "c", "3"], ":0\r\n"),
        (["APPEND", "a", "23"], ":3\r\n"), (["STRLEN", "a"], ":3\r\n"),
        (["INCRBY", "a", "-123"], ":0\r\n"), (["DECRBY", "a", "5"], ":-5\r\n"), (["DECR", "a"], ":-6\r\n"),
        (["INCRBY", "a", "x"], "-ERR value is not an integer or out of range\r\n"),
        (["INCRBYFLOAT", "f", "1.5"], "$3\r\n1.5\r\n"), (["INCRBYFLOAT", "f", "abc"], "-ERR value is not a valid float\r\n"),
        (["GETDEL", "f"], "$3\r\n1.5\r\n"), (["EXISTS", "f", "a", "a"], ":2\r\n"),
        (["GETEX", "a", "PX", "5000"], "$2\r\n-6\r\n"), (["PERSIST", "a"], ":1\r\n"), (["PERSIST", "a"], ":0\r\n"),
        (["EXPIRE", "a", "100", "NX"], ":1\r\n"), (["EXPIRE", "a", "50", "GT"], ":0\r\n"), (["EXPIRE", "a", "50", "LT"], ":1\r\n"),
        (["EXPIRE", "a", "10", "NX", "XX"], "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"),
        (["EXPIRE", "missing", "10"], ":0\r\n"), (["TTL", "missing"], ":-2\r\n"), (["TTL", "b"], ":-1\r\n"),
        (["TYPE", "a"], "+string\r\n"), (["TYPE", "missing"], "+none\r\n"),
        (["RENAME", "missing", "x"], "-ERR no such key\r\n"), (["RENAME", "b", "b2"], "+OK\r\n"), (["RENAMENX", "b2", "a"], ":0\r\n"),
        (["DEL", "a", "b2", "missing"], ":2\r\n"),
        (["RPUSH", "l", "a", "b", "c", "b"], ":4\r\n"), (["LRANGE", "l", "1", "-1"], "*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nb\r\n"),
        (["LINDEX", "l", "-1"], "$1\r\nb\r\n"), (["LINDEX", "l", "9"], "$-1\r\n"), (["LREM", "l", "-1", "b"], ":1\r\n"),
        (["LTRIM", "l", "0", "1"], "+OK\r\n"), (["LLEN", "l"], ":2\r\n"), (["RPOP", "l"], "$1\r\nb\r\n"),
        (["LPUSHX", "nolist", "x"], ":0\r\n"), (["LPOP", "l", "-1"], "-ERR value is out of range, must be positive\r\n"),
        (["HSET", "h", "a", "1", "b", "2"], ":2\r\n"), (["HMSET", "h", "c", "3"], "+OK\r\n"), (["HGET", "h", "c"], "$1\r\n3\r\n"),
        (["HMGET", "h", "a", "zz"], "*2\r\n$1\r\n1\r\n$-1\r\n"), (["HINCRBY", "h", "a", "10"], ":11\r\n"),
        (["HEXISTS", "h", "b"], ":1\r\n"), (["HDEL", "h", "b", "zz"], ":1\r\n"), (["HLEN", "h"], ":2\r\n"),
        (["HKEYS", "h"], "*2\r\n$1\r\na\r\n$1\r\nc\r\n"), (["HSET", "h", "a"], "-ERR wrong number of arguments for 'hset' command\r\n"),
        (["KEYS", "h*"], "*1\r\n$1\r\nh\r\n"), (["DBSIZE"], ":4\r\n"),
        (["ECHO", "hi"], "$2\r\nhi\r\n"), (["SELECT", "0"], "+OK\r\n"), (["SELECT", "16"], "-ERR DB index is out of range\r\n"),
        (["CLIENT", "SETNAME", "tester"], "+OK\r\n"), (["CLIENT", "GETNAME"], "$6\r\ntester\r\n"),
        (["CONFIG", "SET", "appendfsync", "sometimes"], "-ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: always, everysec, no\r\n"),
        (["CONFIG", "SET", "appendfsync", "always"], "+OK\r\n"),
        (["CONFIG", "GET", "appendfsync"], "*2\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n"),
        (["DISCARD"], "-ERR DISCARD without MULTI\r\n"), (["UNWATCH"], "+OK\r\n"),
        (["BLPOP", "q", "-1"], "-ERR timeout is negative\r\n"), (["BLPOP", "q", "x"], "-ERR timeout is not a float or out of range\r\n"),
        (["FLUSHDB"], "+OK\r\n"), (["DBSIZE"], ":0\r\n"),
    ]

    @Test func everyReplyAndErrorAsRedis7Documents() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        for (command, expected) in Self.script {
            client.send(RawClient.encode(command))
            let reply = client.reply()
            #expect(reply == expected, "\(command.joined(separator: " "))")
        }
        #expect(server.store.log.fsyncPolicy == .always, "CONFIG SET appendfsync switched the log's policy")
    }

    @Test func scanVisitsEveryKeyOnce() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        for i in 0..<100 { client.command("SET", "key:\(i)", "v"); _ = client.reply() }
        var cursor = "0"
        var seen = Set<String>()
        var steps = 0
        repeat {
            client.command("SCAN", cursor, "MATCH", "key:*", "COUNT", "7")
            let reply = client.reply()
            let lines = reply.components(separatedBy: "\r\n")
            cursor = lines[2]
            for line in lines where line.hasPrefix("key:") { #expect(seen.insert(line).inserted, "\(line) twice") }
            steps += 1
        } while cursor != "0" && steps < 100
        #expect(seen.count == 100)
    }

    @Test func sixteenDatabasesAreSeparate() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        for (command, expected) in [
            (["SET", "k", "zero"], "+OK\r\n"), (["SELECT", "3"], "+OK\r\n"), (["GET", "k"], "$-1\r\n"),
            (["SET", "k", "three", "PX", "100000"], "+OK\r\n"), (["RPUSH", "l", "x"], ":1\r\n"), (["DBSIZE"], ":2\r\n"),
            (["KEYS", "*"], "*2\r\n$1\r\nk\r\n$1\r\nl\r\n"), (["SELECT", "0"], "+OK\r\n"), (["GET", "k"], "$4\r\nzero\r\n"),
            (["DBSIZE"], ":1\r\n"), (["SELECT", "3"], "+OK\r\n"), (["FLUSHDB"], "+OK\r\n"), (["DBSIZE"], ":0\r\n"),
            (["SET", "again", "1"], "+OK\r\n"), (["SELECT", "0"], "+OK\r\n"), (["DBSIZE"], ":1\r\n"),
            (["FLUSHALL"], "+OK\r\n"), (["DBSIZE"], ":0\r\n"), (["SELECT", "3"], "+OK\r\n"), (["DBSIZE"], ":0\r\n"),
        ] {
            client.send(RawClient.encode(command))
            #expect(client.reply() == expected, "\(command.joined(separator: " "))")
        }
        // Durable and recovered by database: a key with a TTL in database 7, through a snapshot.
        client.command("SELECT", "7"); _ = client.reply()
        client.command("SET", "seven", "7", "EX", "1000"); _ = client.reply()
        client.command("SAVE"); #expect(client.reply() == "+OK\r\n")
        client.command("INFO", "keyspace"); #expect(client.reply().contains("db7:keys=1,expires=1"))
        // Embedded, the process's allocator is whatever the program uses.
        client.command("INFO", "memory"); #expect(client.reply().contains("mem_allocator:libc"))
        let state = server.store.stateView()
        #expect(state.keyspace(7).entries["seven"] != nil && state.keyspace.entries["seven"] == nil)
        #expect(server.store.pendingTimers.keys == 1)
    }
}
