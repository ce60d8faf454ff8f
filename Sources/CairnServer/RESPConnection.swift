import Cairn
import CairnStorage
import DequeModule
import Foundation
import NIOCore

/// One client connection: parses requests, runs them in order, and answers in order.
///
/// Pipelining and durability: a write is *decided* at once (it becomes a txn with the next
/// index) and its reply is held; the replies of a whole read batch go out once the last write
/// among them has committed, so under `always` a pipeline's writes share one group commit. A
/// read that follows a held write waits for that commit first, so it sees the write (and no
/// reader ever sees a write that could still be lost). Runs on its socket's ``PollLoop``; the
/// only waits (commits, BLPOP) are asynchronous.
final class RESPConnection: PollSocketDelegate, @unchecked Sendable {
    let server: ServerState
    /// The server's store, held directly: reached through `server` (a computed property), each
    /// use retained and released it.
    let store: Store
    var session = ClientSession()
    private var input: ByteBuffer?
    private var needed = 1
    /// Commands parsed while another waits (a commit, BLPOP), their arguments copied.
    private var queue = Deque<Arguments>()
    /// The parser's argument ranges, kept between reads for their storage.
    private var spareRanges: [Range<Int>] = []
    private var out: [UInt8] = []
    /// The last decided write whose reply is in `out` and which is not yet committed.
    private var held: Decided?
    /// Keys pushed by held writes: clients blocked on them are woken once they commit.
    private var pushed: [Bytes] = []
    /// Waiting for a commit or blocked in BLPOP: nothing else runs until it ends.
    private var busy = false
    private var closing = false
    /// QUIT: close once everything before it is answered.
    private var quitting = false
    private var protocolError: String?
    /// Nil once closed.
    private var socket: PollSocket?
    /// Its loop's group commit.
    private var committer: LoopCommitter?
    private var blockTimeout: Scheduled<Void>?
    private var blockedPop: (keys: [Bytes], left: Bool)?
    private var limits = RESPLimits()
    /// Commands run and not yet added to the server's count (see ``countCommands()``).
    private var uncountedCommands = 0
    /// Writes of a pipeline decided so far only here: they become one txn (``decideBatched()``)
    /// before anything else runs or answers, and at the end of the read.
    /// Kept apart from their answers so that the operations go to the store as they lie: a
    /// `map` out of (operation, answer) pairs copied every operation (a retain and release of
    /// its key and value) and the pairs went through generic tuple copies.
    private var batched: [Cairn.Operation] = []
    private var batchedAnswers: [BatchedAnswer] = []
    private var batchedBytes = 0

    /// A batched write's answer. Held in a struct: an array of bare closures holds them at the
    /// most general abstraction, so storing one allocated a thunk's context each write.
    private struct BatchedAnswer {
        let answer: @Sendable (Reply) -> RESPValue
    }

    init(server: ServerState) {
        self.server = server
        store = server.store
    }

    // MARK: Socket events

    /// Serves a connection just accepted on `socket` (on its loop).
    func start(on socket: PollSocket) {
        self.socket = socket
        socket.start(self)
        committer = server.committers[socket.loop]
        let (protected, password) = server.lock.withLock { (server.options.protectedMode, server.options.password) }
        if protected && password == nil, !Self.isLoopback(ip: socket.peer.ip) {
            refuse("DENIED Cairn is running in protected mode because no password is set and it listens beyond loopback: only clients on the loopback interface are served. Set --requirepass, or pass --no-protected-mode to serve other hosts unauthenticated.")
            return
        }
        guard let id = server.register(address: socket.peerDescription) else {
            refuse("ERR max number of clients reached")
            return
        }
        session.id = id
        (session.authenticated, limits) = server.lock.withLock { (server.options.password == nil, server.options.limits) }
    }

    /// Answers one error and closes the connection.
    private func refuse(_ message: String) {
        RESPValue.error(message).encode(into: &out, protocolVersion: 2)
        flush(close: true)
    }

    static func isLoopback(ip: String) -> Bool {
        ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    func socketClosed() {
        blockTimeout?.cancel()
        if blockedPop != nil { endBlock() }  // keeps the server's count of blocked clients right
        if session.id != 0 { server.unregister(session.id) }
        countCommands()  // (a client that left blocked, or mid-commit, never reached a flush)
        closing = true
        socket = nil
    }

    func received(_ bytes: ByteBuffer) {
        guard !closing else { return }
        if input == nil { input = bytes } else { var chunk = bytes; input!.writeBuffer(&chunk) }
        guard input!.readableBytes <= limits.maxQueryBuffer else {
            // Redis closes a client whose query buffer passes the limit.
            closing = true
            input = nil
            socket?.close()
            return
        }
        guard input!.readableBytes >= needed else { return }
        parseAndRun(limits)
        decideBatched()
        process()
    }

    /// Parses what has arrived and runs each command as it is found, on views of the read
    /// buffer (see ``Arguments``); while one waits (a commit, BLPOP), later ones are queued as
    /// copies. Stops at a protocol error, QUIT or close, leaving the rest unread.
    private func parseAndRun(_ limits: RESPLimits) {
        guard var buffer = input else { return }
        input = nil
        var ranges = spareRanges
        spareRanges = []
        var wanted = 1
        let used = buffer.withUnsafeReadableBytes { bytes -> Int in
            if store.wantsKeyPathHints && !busy && queue.isEmpty { hintKeys(bytes, limits, &ranges) }
            var offset = 0
            while offset < bytes.count && protocolError == nil && !quitting && !closing {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                switch RESPRequestParser.parse(rest, limits: limits, authenticated: session.authenticated, ranges: &ranges) {
                case .command(let consumed):
                    ranges.withUnsafeBufferPointer { located in
                        let arguments = Arguments(viewing: rest, at: located)
                        runOrQueue(arguments)
                        arguments.expire()
                    }
                    offset += consumed
                case .inline(let arguments, let consumed):
                    runOrQueue(Arguments(arguments))
                    offset += consumed
                case .empty(let consumed):
                    offset += consumed
                case .needMore(let atLeast):
                    wanted = atLeast
                    return offset
                case .protocolError(let message):
                    protocolError = message
                }
            }
            return offset
        }
        spareRanges = ranges.capacity > 1024 ? [] : ranges  // (not the peak of one huge MSET for good)
        buffer.moveReaderIndex(forwardBy: used)
        needed = wanted
        guard buffer.readableBytes > 0 else { return }
        if buffer.capacity >= PollLoop.readSize && buffer.readableBytes <= buffer.capacity / 8 {
            // A request cut by the end of a read, left in the loop's read buffer: kept in a buffer
            // of its own size (an idle client does not pin 64 KiB, and the loop's buffer stays
            // its own).
            input = ByteBufferAllocator().buffer(buffer: buffer)
            return
        }
        input = buffer
        if buffer.readerIndex > 1 << 16 { input!.discardReadBytes() }
    }

    /// Before a pipeline runs, tells the store which keys its commands name (each data
    /// command's first key), so that in a large keyspace their lookups overlap their cache
    /// misses instead of taking them one after another.
    private func hintKeys(_ bytes: UnsafeRawBufferPointer, _ limits: RESPLimits, _ ranges: inout [Range<Int>]) {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * Self.maxHintedKeys) { hashes in
            // Writes' keys from the front, reads' from the back: the two look in different
            // tables while writes wait for a sync.
            var offset = 0, writes = 0, reads = 0
            while writes + reads < Self.maxHintedKeys && offset < bytes.count {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                guard case .command(let consumed) = RESPRequestParser.parse(rest, limits: limits, authenticated: session.authenticated, ranges: &ranges) else { break }
                offset += consumed
                guard case .data(let spec) = resolve(name: UnsafeRawBufferPointer(rebasing: rest[ranges[0]])).kind,
                      spec.firstKey > 0, spec.firstKey < ranges.count else { continue }
                let hash = Store.keyHash(UnsafeRawBufferPointer(rebasing: rest[ranges[spec.firstKey]]))
                if spec.isWrite {
                    hashes[writes] = hash
                    writes += 1
                } else {
                    reads += 1
                    hashes[hashes.count - reads] = hash
                }
            }
            store.hintKeyPaths(writes: UnsafeBufferPointer(rebasing: hashes[..<writes]),
                               reads: UnsafeBufferPointer(rebasing: hashes[(hashes.count - reads)...]))
        }
    }

    /// Keys hinted before a pipeline runs (its first ones).
    private static let maxHintedKeys = 32

    // MARK: Running commands

    /// Runs a command just parsed, or queues a copy of it behind one that waits.
    private func runOrQueue(_ arguments: Arguments) {
        if busy || !queue.isEmpty { queue.append(arguments.owned()) } else { run(arguments) }
    }

    /// Runs queued commands until one must wait; then answers what is ready.
    private func process() {
        while !busy && !closing, let arguments = queue.popFirst() {
            run(arguments)
        }
        decideBatched()
        guard !busy && !closing else { return }
        if held != nil { waitForHeld(); return }
        if let message = protocolError, queue.isEmpty {
            // Everything before the bad request is answered; then the error, then close.
            append(.error("ERR \(message)"))
            flush(close: true)
            return
        }
        flush(close: quitting)
    }

    /// Appends a reply in the session's protocol (after those of the batched writes).
    func append(_ value: RESPValue) {
        if !batched.isEmpty { decideBatched() }
        value.encode(into: &out, protocolVersion: session.protocolVersion)
    }

    /// Adds the commands run since the last count to the server's total and its metric: once
    /// a batch, not per command (an atomic add and a metrics call each).
    func countCommands() {
        guard uncountedCommands > 0 else { return }
        server.totalCommands.add(uncountedCommands, ordering: .relaxed)
        server.commandCounter.increment(by: Int64(uncountedCommands))
        uncountedCommands = 0
    }

    private func flush(close: Bool = false) {
        countCommands()
        guard let socket, !out.isEmpty || close else { return }
        if !out.isEmpty { socket.send(&out) }  // (sent at the end of the loop's tick)
        if close {
            closing = true
            socket.closeAfterSending()
        }
    }

    /// Holds every reply until the held write commits, then answers and goes on.
    private func waitForHeld() {
        afterHeldCommits {}
    }

    /// Waits (without a Swift task: the event loop leads the sync, see ``LoopCommitter``) for
    /// the held write to commit, makes it visible, runs `then`, and goes on with the queue.
    /// Under `no` and `everysec` a written txn is committed already: no waiting at all.
    private func afterHeldCommits(_ then: @escaping @Sendable () -> Void) {
        guard let decided = held, let committer else { return }
        let store = self.store
        if store.log.fsyncPolicy != .always {
            held = nil
            do { try store.commitNow(decided) } catch { failed(error); return }
            then()
            commitDone()
            process()
            return
        }
        busy = true
        let started = monotonicNanoseconds()
        // The loop's group commit: one inline sync once this tick's reads are decided.
        // (The commands run since the last replies went out are those waiting: see LoopCommitter.)
        committer.add(decided, requests: max(1, uncountedCommands)) { [self] error in
            server.commitWait.recordNanoseconds(monotonicNanoseconds() - started)
            busy = false
            held = nil
            if let error { failed(error); return }
            then()
            commitDone()
            process()
        }
    }

    /// The store refused to make a write durable: nothing held may be acknowledged.
    private func failed(_ error: Error) {
        out.removeAll()
        append(.error("ERR the write could not be made durable: \(error)"))
        flush(close: true)
    }

    /// After held writes commit (or at once when they were committed already).
    private func commitDone() {
        guard !pushed.isEmpty else { return }
        server.keysPushed(pushed)  // (wakes blocked clients asynchronously: `pushed` is not changed meanwhile)
        pushed.removeAll(keepingCapacity: true)  // (emptied without its storage, a push per LPUSH allocated it again)
    }

    /// Decides a write (its reply is held until it commits); nil, with an error reply queued,
    /// when the store refused it.
    func decideWrite(_ operation: Cairn.Operation) -> Reply? {
        do {
            let (reply, decided) = try store.decide(operation)
            notePush(operation)
            hold(decided)
            return reply
        } catch {
            append(.error("ERR \(error)"))
            return nil
        }
    }

    /// A decided txn's reply waits for it: at once visible when already committed, else held
    /// (the latest held index covers every earlier one).
    private func hold(_ decided: Decided) {
        if decided.isCommitted {
            try? store.commitNow(decided)
            if held == nil { commitDone() }
        } else if held == nil || decided.index > held!.index {
            held = decided
        }
    }

    /// Decides a write and queues its reply.
    func write(_ operation: Cairn.Operation, answer: (Reply) -> RESPValue) {
        if let reply = decideWrite(operation) { append(answer(reply)) }
    }

    /// Runs one command (the session's state machine: auth, MULTI, subscriptions).
    private func run(_ arguments: Arguments) {
        let command = resolve(arguments)
        uncountedCommands += 1
        if session.lastCommand !== command { session.lastCommand = command }
        if !session.authenticated || session.inMulti || session.isSubscribedRESP2, answeredBySessionState(command, arguments) { return }
        switch command.kind {
        case .data(let spec):
            if !spec.isWrite && !batched.isEmpty { decideBatched() }  // (a read sees the writes before it)
            guard Self.arityFits(spec.arity, arguments.count) else { append(.error(RedisErrors.arity(command.name))); return }
            runData(spec, arguments)
        case .connection(let handler):
            if !batched.isEmpty { decideBatched() }
            guard Self.arityFits(handler.arity, arguments.count) else { append(.error(RedisErrors.arity(command.name))); return }
            handler.run(self, arguments)
        case .unknown:
            append(.error(RedisErrors.unknown(arguments)))
        }
    }

    /// What a session that is not authenticated, is in MULTI, or is subscribed under RESP2 does
    /// with a command instead of running it: true when it answered (or queued) it.
    private func answeredBySessionState(_ command: ResolvedCommand, _ arguments: Arguments) -> Bool {
        let name = command.name
        if !session.authenticated && !["auth", "hello", "quit"].contains(name) {
            append(.error("NOAUTH Authentication required."))
            return true
        }
        if session.isSubscribedRESP2 && !["subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset"].contains(name) {
            append(.error("ERR Can't execute '\(name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
            return true
        }
        if session.inMulti && !["exec", "discard", "multi", "watch", "quit", "reset"].contains(name) {
            queueInMulti(command, arguments)
            return true
        }
        return false
    }

    /// The last name resolved, as sent (names up to 16 bytes, packed in two words): a pipeline
    /// mostly repeats one command, and making the name's String and hashing it into the tables
    /// for each was 3% of a pipelined SET.
    private var lastSent: (UInt64, UInt64, count: Int) = (0, 0, -1)
    private var lastResolved = ResolvedCommand.unknown("")

    /// The command a request names.
    private func resolve(_ arguments: Arguments) -> ResolvedCommand {
        arguments.withBytes(0) { bytes in resolve(name: bytes) }
    }

    private func resolve(name bytes: UnsafeRawBufferPointer) -> ResolvedCommand {
        guard bytes.count <= 16 else { return ResolvedCommand.named(Self.commandName(bytes)) }
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
        if lastSent.count == bytes.count && lastSent.0 == words.0 && lastSent.1 == words.1 { return lastResolved }
        lastResolved = ResolvedCommand.named(Self.commandName(bytes))
        lastSent = (words.0, words.1, bytes.count)
        return lastResolved
    }

    /// A command's name in lower case, as Redis folds it (ASCII letters only).
    static func commandName(_ name: Bytes) -> String {
        name.storage.withUnsafeBytes(commandName)
    }

    static func commandName(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { out in
            for i in bytes.indices { out[i] = bytes[i] &- 0x41 < 26 ? bytes[i] | 0x20 : bytes[i] }
            return bytes.count
        }
    }

    static func arityFits(_ arity: Int, _ count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }

    private func runData(_ spec: DataCommands.Spec, _ arguments: Arguments) {
        if let read = spec.read {
            guard held == nil else { waitToRead(arguments); return }
            let reader = self.reader
            append(DataCommands.answering { try read(arguments, reader) })
            return
        }
        let plan: CommandPlan
        do { plan = try spec.plan(arguments, store) } catch {
            append(.error((error as? CommandError)?.message ?? "ERR \(error)"))
            return
        }
        switch consume plan {
        case .reply(let value):
            append(value)
        case .read(let body):
            if !batched.isEmpty { decideBatched() }
            guard held == nil else { waitToRead(arguments); return }
            append(body(reader))
        case .write(let operation, let answer):
            let size = arguments.byteCount
            if batchedBytes + size > Self.maxBatchedBytes || batched.count == Self.maxBatchedWrites { decideBatched() }
            batched.append(inDatabase(consume operation))
            batchedAnswers.append(BatchedAnswer(answer: answer))
            batchedBytes += size
        }
    }

    /// Most writes, and most bytes of their arguments, batched into one txn: a larger write
    /// is decided alone, as are the batch's before it.
    private static let maxBatchedWrites = 64
    private static let maxBatchedBytes = 64 << 10

    /// Decides the batched writes as one txn and appends their replies in order. Pipelined
    /// writes share a txn as they share a group commit: a txn a write cost a header, a log
    /// record, a clock read and the store's locks each (and under `always`, a change record).
    /// The writes stay independent as Redis runs them: each gets its own reply, an error in
    /// one changes nothing of the others.
    private func decideBatched() {
        guard !batched.isEmpty else { return }
        var operations: [Cairn.Operation] = []
        var answers: [BatchedAnswer] = []
        swap(&operations, &batched)
        swap(&answers, &batchedAnswers)
        batchedBytes = 0
        defer {
            operations.removeAll(keepingCapacity: true)
            answers.removeAll(keepingCapacity: true)
            if batched.isEmpty { swap(&operations, &batched); swap(&answers, &batchedAnswers) }  // (keeps the storage)
        }
        assert(operations.count == answers.count, "a batched write without its answer")
        if operations.count == 1 {
            write(operations.removeLast(), answer: answers.removeLast().answer)  // (no batch's txn for one)
            return
        }
        let replies: [Reply]
        let decided: Decided
        do {
            (replies, decided) = try store.decide(lending: &operations)
        } catch {
            for _ in operations { encode(.error("ERR \(error)")) }  // (a reply each, as when decided alone)
            return
        }
        precondition(replies.count == operations.count, "a reply an operation")
        for position in operations.indices {
            notePush(operations[position])
            encode(answers[position].answer(replies[position]))
        }
        hold(decided)  // (after the pushes are noted: a committed txn wakes their waiters here)
    }

    /// Notes the key of a push, whose blocked clients are woken once it commits.
    private func notePush(_ operation: borrowing Cairn.Operation) {
        switch operation {
        case .push(let key, _, _, _), .inDatabase(_, .push(let key, _, _, _)): pushed.append(key)
        default: break
        }
    }

    /// Appends a reply in the session's protocol, batched writes or not.
    private func encode(_ value: RESPValue) {
        value.encode(into: &out, protocolVersion: session.protocolVersion)
    }

    /// A read after a held write must see it: it runs again once that write has committed.
    private func waitToRead(_ arguments: Arguments) {
        queue.prepend(arguments.owned())
        waitForHeld()
    }

    /// Reads of the selected database.
    var reader: KeyspaceReader { KeyspaceReader(store: store, db: session.db) }

    /// An operation on the selected database. Consuming: the operation moves on to the store
    /// (a copy retained and released its key and value again, 2% of a SET).
    func inDatabase(_ operation: consuming Cairn.Operation) -> Cairn.Operation {
        session.db == 0 ? operation : .inDatabase(session.db, operation)
    }

    /// Decides operations as one txn (held like a write); nil, with an error reply queued, when
    /// the store refused it.
    func decideBatch(_ operations: [Cairn.Operation]) -> [Reply]? {
        do {
            let (replies, decided) = try store.decide(operations, guards: [])
            hold(decided)
            return replies
        } catch {
            append(.error("ERR \(error)"))
            return nil
        }
    }

    // MARK: MULTI / EXEC

    private func queueInMulti(_ command: ResolvedCommand, _ arguments: Arguments) {
        let name = command.name
        guard let arity = command.arity else {
            session.multiFailed = true
            append(.error(RedisErrors.unknown(arguments)))
            return
        }
        guard Self.arityFits(arity, arguments.count) else {
            session.multiFailed = true
            append(.error(RedisErrors.arity(name)))
            return
        }
        session.queued.append(arguments.values)
        append(.simple("QUEUED"))
    }

    /// EXEC: the writes of the block as one txn (guarded by WATCH), every reply in order.
    /// Reads in the block are answered once that txn has committed.
    func exec() {
        let queued = session.queued
        let guards = session.watched
        let failed = session.multiFailed
        session.resetMulti()
        if failed {
            append(.error("EXECABORT Transaction discarded because of previous errors."))
            return
        }
        enum Step: @unchecked Sendable { case write(Int, @Sendable (Reply) -> RESPValue), read(@Sendable (KeyspaceReader) -> RESPValue), value(RESPValue) }
        var steps: [Step] = []
        var operations: [Cairn.Operation] = []
        for arguments in queued {
            let name = Self.commandName(arguments[0])
            if let spec = DataCommands.table[name] {
                do {
                    switch try spec.plan(Arguments(arguments), store) {
                    case .reply(let value): steps.append(.value(value))
                    case .read(let body): steps.append(.read(body))
                    case .write(let operation, let answer):
                        steps.append(.write(operations.count, answer))
                        operations.append(inDatabase(operation))
                        notePush(operation)
                    }
                } catch {
                    steps.append(.value(.error((error as? CommandError)?.message ?? "ERR \(error)")))
                }
            } else if let immediate = ConnectionCommands.inTransaction(self, Arguments(arguments)) {
                steps.append(.value(immediate))
            } else {
                steps.append(.value(.error("ERR '\(name)' is not supported inside MULTI")))
            }
        }
        let replies: [Reply]?
        let decided: Decided
        do {
            (replies, decided) = try store.decide(operations, guards: guards)
        } catch {
            append(.error("ERR \(error)"))
            return
        }
        guard let replies else {
            pushed.removeAll()
            append(.nullArray)  // a watched key changed: nothing ran
            return
        }
        let plan = steps
        let reader = self.reader
        let finish: @Sendable (Store) -> RESPValue = { _ in
            .array(plan.map { step in
                switch step {
                case .write(let index, let answer): return answer(replies[index])
                case .read(let body): return body(reader)
                case .value(let value): return value
                }
            })
        }
        if decided.isCommitted {
            try? store.commitNow(decided)
            append(finish(store))
            commitDone()
            return
        }
        // Hold it like a write: the array is built (reads run) once the txn has committed.
        if let earlier = held, earlier.index > decided.index { held = earlier } else { held = decided }
        deferredAfterCommit(finish)
    }

    /// Queues a reply computed after the held writes commit (keeps reply order).
    private func deferredAfterCommit(_ body: @escaping @Sendable (Store) -> RESPValue) {
        afterHeldCommits { [self] in append(body(store)) }
    }

    // MARK: Blocking pops

    /// BLPOP / BRPOP: pops from the first non-empty key, else blocks until a push or the timeout.
    func blockingPop(keys: [Bytes], timeout: Double, left: Bool) {
        if tryPop(keys: keys, left: left) { return }
        if session.inMultiExec {
            append(.nullArray)
            return
        }
        guard let socket else { return }
        busy = true
        blockedPop = (keys, left)
        let loop = socket.loop
        server.block(ServerState.BlockedClient(id: session.id, wake: { [self] in loop.execute { self.retryBlockedPop() } }), on: keys)
        if timeout > 0 {
            blockTimeout = loop.scheduleTask(in: .nanoseconds(Int64(timeout * 1e9))) { [self] in
                guard blockedPop != nil else { return }
                endBlock()
                append(.nullArray)
                flush()
                process()
            }
        }
    }

    private func tryPop(keys: [Bytes], left: Bool) -> Bool {
        for key in keys {
            guard let entry = store.liveEntry(key, db: session.db) else { continue }
            guard case .list = entry.value else {
                append(.error(KVError.wrongType.message))
                return true
            }
            guard let reply = decideWrite(inDatabase(.pop(key, count: nil, left: left))) else { return true }
            if case .bulk(let value) = reply {
                append(.array([.bulk(key), .bulk(value)]))
                return true
            }
        }
        return false
    }

    private func retryBlockedPop() {
        guard let (keys, left) = blockedPop else { return }
        if tryPop(keys: keys, left: left) {
            endBlock()
            process()
        }
    }

    private func endBlock() {
        blockTimeout?.cancel()
        blockTimeout = nil
        blockedPop = nil
        busy = false
        server.unblock(session.id)
    }

    // MARK: Pub/sub and closing

    /// Delivers a pub/sub message (from any thread) on this connection's event loop.
    func deliverer() -> @Sendable (RESPValue) -> Void {
        let loop = socket?.loop
        return { [weak self] message in
            loop?.execute { [weak self] in
                guard let self, let socket = self.socket, !self.closing else { return }
                var bytes: [UInt8] = []
                message.encode(into: &bytes, protocolVersion: self.session.protocolVersion)
                socket.send(&bytes)
            }
        }
    }

    /// QUIT: OK once everything before it is answered, then close; later requests are ignored.
    func quit() {
        append(.ok)
        quitting = true
        queue.removeAll()
    }
}
