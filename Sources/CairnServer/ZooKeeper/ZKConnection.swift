import Cairn
import CairnStorage
import DequeModule
import Foundation
import NIOCore

/// One ZooKeeper client connection: the connect handshake, then requests answered in order.
///
/// A write is decided at once and its reply held, with those after it, in a batch until it
/// commits; writes that arrive while one batch's sync runs are decided into the next, so a
/// pipeline's writes share group commits and deciding overlaps syncing. A read waits for the
/// connection's held
/// writes, so a client reads its own writes. Watch events are queued by the store as their
/// change commits (``ZKWatchOutbox``) and sent before any later reply. Runs on the channel's
/// event loop; its only waits (commits) are callbacks.
final class ZKConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ZKServerState
    /// The server's store, held directly: reached through `server` (a computed property), each
    /// use retained and released it.
    let store: Store
    let info: ZKClientInfo
    var outbox: ZKWatchOutbox { info.outbox }
    private var context: ChannelHandlerContext?
    /// Its loop's (a channel never changes loops).
    private var flusher: LoopFlusher?
    /// The loop's group commit and the channel's allocator, looked up once (each write used
    /// them: a lookup and a few retains a request).
    private var committer: LoopCommitter?
    private var allocator = ByteBufferAllocator()
    private var input: ByteBuffer?
    private var queue = Deque<(xid: Int32, op: ZKOpCode, request: ZKRequest, received: ContinuousClock.Instant)>()
    private var out: [UInt8] = []
    private var sendBuffer = SendBuffer()
    /// Replies (and events) waiting for a decided txn to commit, oldest first; the last may
    /// still grow. Everything answered after a held reply joins the last batch, so the order
    /// of replies is the order of requests.
    private var batches = Deque<(decided: Decided, bytes: [UInt8], waiting: Bool)>()
    /// Opening the session: nothing runs until it is committed.
    private var busy = false
    private var closing = false
    /// Close once what is queued is answered (closeSession, a failed `addauth`, bad input).
    private var closeReason: String?
    private var session: Int64 = 0
    private var timeout: Int32 = 0
    private var lastTouch: Int64 = 0
    private var ids: [ZKIdentity] = []
    private var expiryCheck: RepeatedTask?
    private var framesSeen = 0
    /// The xid of a request with an unknown op code, answered before the connection closes.
    private var pendingUnimplemented: Int32?

    init(server: ZKServerState, address: String) {
        self.server = server
        store = server.store
        info = ZKClientInfo(address: address)
    }

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        flusher = server.flushers[context.eventLoop]
        committer = server.committers[context.eventLoop]
        allocator = context.channel.allocator
        let channel = context.channel
        let loop = context.eventLoop
        outbox.wake = { [weak self] in loop.execute { [weak self] in self?.deliverEvents() } }
        info.close = { channel.close(promise: nil) }
        if let ip = context.remoteAddress?.ipAddress {
            ids = [ZKIdentity(scheme: "ip", id: ZKAccess.parseAddress(ip).flatMap(Self.addressText) ?? ip)]
        }
        guard server.register(info) else {
            server.options.logger.warning("ZooKeeper client \(info.address) refused: \(server.options.maxClients) clients connected")
            closing = true
            context.close(promise: nil)
            return
        }
    }

    /// An address in its usual text form (an IPv4-mapped IPv6 address as IPv4).
    static func addressText(_ bytes: [UInt8]) -> String? {
        bytes.count == 4 ? bytes.map(String.init).joined(separator: ".") : nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        expiryCheck?.cancel()
        for id in outbox.removeAll() { store.removeWatch(id) }
        server.unregister(info)
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var chunk = unwrapInboundIn(data)
        if input == nil { input = chunk } else { input!.writeBuffer(&chunk) }
        parse(context)
        process()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        server.options.logger.info("ZooKeeper client \(info.address): \(error); closing")
        close(context)
    }

    // MARK: Framing

    private func parse(_ context: ChannelHandlerContext) {
        guard var buffer = input else { return }
        defer { input = buffer.readableBytes > 0 ? buffer : nil }
        while closeReason == nil, buffer.readableBytes >= 4, let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) {
            if framesSeen == 0, session == 0, let word = ZKFourLetterWords.word(length) {
                // Operators' commands share the port: a 4-byte word instead of a length.
                answerFourLetterWord(word, context)
                return
            }
            guard length >= 0, Int(length) <= server.options.maxFrame else {
                fail("frame length \(length) is outside 0...\(server.options.maxFrame) (jute.maxbuffer)")
                return
            }
            guard buffer.readableBytes >= 4 + Int(length) else { break }
            buffer.moveReaderIndex(forwardBy: 4)
            let payload = buffer.readBytes(length: Int(length))!
            framesSeen += 1
            server.packetsReceived.add(1, ordering: .relaxed)
            if session == 0 && framesSeen == 1 {
                connect(payload)
                continue
            }
            do {
                let (xid, op, request) = try ZKCodec.request(payload)
                queue.append((xid, op, request, .now))
            } catch {
                if payload.count >= 8 {
                    // An op code ZooKeeper does not know: answered Unimplemented (zxid -1), as
                    // ZooKeeper answers, then closed like any other bad request.
                    var reader = JuteReader(payload)
                    if let xid = try? reader.int(), let type = try? reader.int(), ZKOpCode(rawValue: type) == nil {
                        pendingUnimplemented = xid
                    }
                }
                fail("malformed request (frame \(framesSeen)): \(error)")
                return
            }
        }
        if buffer.readerIndex > 1 << 16 { buffer.discardReadBytes() }
    }

    /// Bad input: what came before it is answered, then the connection closes with a log line.
    private func fail(_ reason: String) {
        server.options.logger.info("ZooKeeper client \(info.address): \(reason); closing the connection")
        closeReason = reason
    }

    // MARK: The handshake

    private func connect(_ payload: [UInt8]) {
        let request: ZKConnectRequest
        do { request = try ZKCodec.connectRequest(payload) } catch {
            fail("malformed connect request: \(error)")
            return
        }
        let lastZxid = store.readTree { _, zxid in zxid }
        if request.lastZxidSeen > lastZxid {
            // A client that has seen more history than this server must not go back in time.
            fail("client has seen zxid 0x\(String(request.lastZxidSeen, radix: 16)), this server's last is 0x\(String(lastZxid, radix: 16))")
            return
        }
        if request.sessionID == 0 {
            let timeout = min(max(request.timeout, server.options.minSessionTimeout), server.options.maxSessionTimeout)
            busy = true
            do {
                let (reply, decided) = try store.decide(.createSession(timeout: Int64(timeout)))
                guard case .integer(let id) = reply else { throw TreeError.runtimeInconsistency }
                afterCommit(decided) { [self] in
                    busy = false
                    established(session: id, timeout: timeout)
                    process()
                }
            } catch {
                fail("cannot open a session: \(error)")
                busy = false
            }
            return
        }
        // A client resuming its session on a new connection (after a dropped one).
        let id = request.sessionID
        guard let open = store.session(id), ZKServerState.same(request.password, server.password(for: id)), store.touch(id) else {
            // ZooKeeper's answer to an expired (or unknown, or forged) session: timeout 0, then
            // close; the client reports the session expired.
            server.options.logger.info("ZooKeeper client \(info.address): session 0x\(String(id, radix: 16)) is expired or its password is wrong")
            var writer = JuteWriter()
            ZKConnectResponse(timeout: 0, sessionID: 0, password: [UInt8](repeating: 0, count: 16)).encode(into: &writer)
            out.append(contentsOf: writer.frame)
            closeReason = "session expired"
            return
        }
        established(session: id, timeout: Int32(clamping: open.timeout))
    }

    private func established(session id: Int64, timeout: Int32) {
        session = id
        self.timeout = timeout
        lastTouch = store.now()
        info.lock.withLock {
            info.sessionID = id
            info.timeout = timeout
        }
        server.attach(id, to: info)
        var writer = JuteWriter()
        ZKConnectResponse(timeout: timeout, sessionID: id, password: server.password(for: id)).encode(into: &writer)
        out.append(contentsOf: writer.frame)
        // A session closed elsewhere (expired, or closed by its owner on another connection)
        // ends this connection; the client learns it is expired when it reconnects.
        if let loop = context?.eventLoop {
            let interval = TimeAmount.milliseconds(Int64(max(200, timeout / 3)))
            expiryCheck = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
                guard let self, !self.closing, self.store.session(id) == nil else { return }
                self.server.options.logger.info("ZooKeeper session 0x\(String(id, radix: 16)) has expired; closing its connection \(self.info.address)")
                if let context = self.context { self.close(context) }
            }
        }
    }

    // MARK: Running requests

    private func process() {
        while !busy && !closing, let op = queue.first?.op {
            // A read waits for this connection's writes: it must see them.
            if !batches.isEmpty && !Self.isWrite(op) { break }
            // Moved out of the queue, not copied and then destroyed there.
            let next = queue.removeFirst()
            run(next.xid, next.op, next.request, next.received)
        }
        guard !busy && !closing else { return }
        if let last = batches.last, !last.waiting { waitFor(last.decided) }
        guard batches.isEmpty else { return }
        if let xid = pendingUnimplemented {
            pendingUnimplemented = nil
            takeEvents()
            reply(xid: xid, zxid: -1, err: TreeError.unimplemented.rawValue)
        }
        flush()
    }

    static func isWrite(_ op: ZKOpCode) -> Bool {
        switch op {
        case .create, .create2, .createContainer, .createTTL, .delete, .deleteContainer, .setData, .setACL, .multi, .closeSession: return true
        default: return false
        }
    }

    /// Waits for the last batch's txn; when it commits, every batch up to it is sent.
    private func waitFor(_ decided: Decided) {
        batches[batches.count - 1].waiting = true
        guard let committer else { return }
        // One closure a write (not one wrapping another).
        committer.add(decided) { [self] error in committed(through: decided.index, error) }
    }

    /// The loop's group commit has synced through `index` (or the store failed): every batch up
    /// to it is sent, and what waited behind it runs.
    private func committed(through index: UInt64, _ error: StoreError?) {
        if let error {
            storeFailed(error)
            return
        }
        while let first = batches.first, first.decided.index <= index {
            out.append(contentsOf: first.bytes)
            batches.removeFirst()
        }
        flush()
        process()
    }

    /// Nothing held may be acknowledged: drop it and close (the client sees the connection
    /// lost, as for a server that died before syncing).
    private func storeFailed(_ error: StoreError) {
        fail("the store failed: \(error)")
        batches.removeAll()
        queue.removeAll()
        flush()
    }

    /// Where a reply goes: into the last batch while any is held, else out at the next flush.
    private func emit(_ bytes: [UInt8]) {
        if batches.isEmpty { out.append(contentsOf: bytes) } else { batches[batches.count - 1].bytes.append(contentsOf: bytes) }
    }

    /// Runs `then` on the event loop once `decided` has committed (and is visible), through
    /// the loop's group commit.
    private func afterCommit(_ decided: Decided, _ then: @escaping () -> Void) {
        guard let committer else { return }
        committer.add(decided) { [self] error in
            if let error { storeFailed(error) } else { then() }
        }
    }

    /// Keeps the session alive: at most every tenth of its timeout (a touch takes the store's
    /// writer lock). False when the session is gone.
    private func touch() -> Bool {
        let now = store.now()
        guard now - lastTouch >= Int64(max(1, timeout / 10)) else { return true }
        lastTouch = now
        return store.touch(session)
    }

    private func run(_ xid: Int32, _ op: ZKOpCode, _ request: ZKRequest, _ received: ContinuousClock.Instant) {
        guard touch() else {
            server.options.logger.info("ZooKeeper session 0x\(String(session, radix: 16)) has expired; closing its connection \(info.address)")
            closeReason = "session expired"
            queue.removeAll()
            return
        }
        takeEvents()
        let zxid: Int64
        switch request {
        case .ping:
            zxid = store.readTree { _, zxid in zxid }
            reply(xid: xid, zxid: zxid, err: 0)
        case .create, .delete, .setData, .setACL, .closeSession:
            zxid = write(xid, op, request)
        case .multi where op == .multi:  // the same request as multiRead, which reads
            zxid = write(xid, op, request)
        default:
            zxid = read(xid, op, request)
        }
        server.requests.increment()
        let elapsed = (ContinuousClock.now - received).components
        let latency = Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15
        server.recordLatency(latency)
        info.lock.withLock {
            info.received += 1
            info.lastOperation = Self.shortName(op)
            info.lastCxid = xid
            info.lastZxid = zxid
            info.lastResponse = Date()
            info.lastLatency = latency
            info.latency.add(latency)
        }
    }

    // MARK: Writes

    /// Decides a write and appends its reply (held until it commits); returns the zxid.
    private func write(_ xid: Int32, _ op: ZKOpCode, _ request: ZKRequest) -> Int64 {
        if case .closeSession = request {
            return decideAndReply(xid, .closeSession(session), refusal: { _ in nil }) { reply, zxid, _ in
                closeReason = "the client closed its session"
                self.reply(xid: xid, zxid: zxid, err: 0)
            }
        }
        let prepared: (Cairn.Operation, WriteCheck)
        do throws(TreeError) { prepared = try prepare(op, request) } catch {
            let zxid = store.readTree { _, zxid in zxid }
            reply(xid: xid, zxid: zxid, err: error.rawValue)
            return zxid
        }
        let ids = self.ids
        return decideAndReply(xid, prepared.0, refusal: { tree in prepared.1.refusal(tree, ids) }) { result, zxid, _ in
            switch (request, result) {
            case (_, .treeError(let error)):
                self.reply(xid: xid, zxid: zxid, err: error.rawValue)
            case (.create, .created(let path, let stat)):
                self.reply(xid: xid, zxid: zxid, err: 0) { w in
                    w.string(path)
                    if op != .create { ZKCodec.stat(stat, into: &w) }
                }
            case (.setData, .stat(let stat)), (.setACL, .stat(let stat)):
                self.reply(xid: xid, zxid: zxid, err: 0) { w in ZKCodec.stat(stat, into: &w) }
            case (.multi(let operations), _):
                replyMulti(xid: xid, zxid: zxid, result, operations.map(\.0))
            default:
                self.reply(xid: xid, zxid: zxid, err: 0)
            }
        }
    }

    private func decideAndReply(_ xid: Int32, _ operation: Cairn.Operation, refusal: (ZTree) -> Reply?, _ answer: (Reply, Int64, Decided) -> Void) -> Int64 {
        do {
            let (result, decided) = try store.decide(operation, unless: refusal)
            let zxid = Int64(bitPattern: decided.index)
            if !decided.isCommitted {
                // Into the open batch (its txn is now this later one), or a new batch while
                // the last one's sync runs.
                if let last = batches.last, !last.waiting { batches[batches.count - 1].decided = decided } else { batches.append((decided, [], false)) }
            }
            answer(result, zxid, decided)
            return zxid
        } catch {
            fail("the store failed: \(error)")
            return 0
        }
    }

    static func failureCodes(_ count: Int, at position: Int, _ error: TreeError) -> [Int32] {
        var codes = [Int32](repeating: 0, count: position)
        codes.append(error.rawValue)
        codes.append(contentsOf: [Int32](repeating: TreeError.runtimeInconsistency.rawValue, count: max(0, count - position - 1)))
        return codes
    }

    /// What a write must pass against the head state before it is decided.
    enum WriteCheck {
        /// The client needs `perm` on the node at `path` (when it exists).
        case permission(path: String, perm: Int32)
        /// A multi's checks, each against the tree its predecessors leave.
        case custom((ZTree) -> Reply?)

        func refusal(_ tree: ZTree, _ ids: [ZKIdentity]) -> Reply? {
            switch self {
            case .permission(let path, let perm): return ZKConnection.refused(tree, path, perm, ids).map { .treeError($0) }
            case .custom(let check): return check(tree)
            }
        }
    }

    /// The store operation for a write, and its ACL check against the head state (a value,
    /// not a closure, for a single operation: no allocation per request).
    private func prepare(_ op: ZKOpCode, _ request: ZKRequest) throws(TreeError) -> (Cairn.Operation, WriteCheck) {
        let ids = self.ids
        switch request {
        case .multi(let operations):
            var prepared: [(Cairn.Operation, (ZTree) -> TreeError?)] = []
            for (position, (inner, request)) in operations.enumerated() {
                do throws(TreeError) {
                    switch request {
                    case .create, .delete, .setData: break
                    case .check(let path, let version):
                        try ZPath.validate(path)
                        prepared.append((.checkNode(path: path, version: version), { _ in nil }))
                        continue
                    default: throw .badArguments
                    }
                    let (operation, path, perm) = try single(inner, request, ids: ids)
                    prepared.append((operation, { tree in Self.refused(tree, path, perm, ids) }))
                } catch {
                    // A malformed operation fails the multi at its position; nothing is logged.
                    let codes = Self.failureCodes(operations.count, at: position, error)
                    return (.multi([]), .custom { _ in .multiFailed(codes: codes) })
                }
            }
            let count = operations.count
            return (.multi(prepared.map(\.0)), .custom { tree in
                // Each operation is checked against the tree its predecessors leave, as
                // ZooKeeper does: a node the multi creates carries its new ACL for the next ones.
                var scratch = tree
                for (position, (operation, check)) in prepared.enumerated() {
                    if let error = check(scratch) { return .multiFailed(codes: Self.failureCodes(count, at: position, error)) }
                    guard position < count - 1 else { break }
                    // One that would fail is left to the multi's own apply, which answers it.
                    guard let next = scratch.applying(operation) else { break }
                    scratch = next
                }
                return nil
            })
        default:
            let (operation, path, perm) = try single(op, request, ids: ids)
            return (operation, .permission(path: path, perm: perm))
        }
    }

    /// One create / delete / setData / setACL as a store operation and its ACL check: the
    /// permission the client needs on the node at a path.
    private func single(_ op: ZKOpCode, _ request: ZKRequest, ids: [ZKIdentity]) throws(TreeError) -> (Cairn.Operation, path: String, perm: Int32) {
        switch request {
        case .create(let path, let data, let acl, let flags, let ttl):
            guard let mode = ZKCreateMode(rawValue: flags) else { throw .badArguments }
            try ZPath.validate(path, sequential: mode.sequential)
            if mode.kind == .ttl {
                // ZooKeeper's bound: 40 bits of milliseconds (about 35 years).
                guard op == .createTTL, let ttl, ttl > 0, ttl <= 0xFF_FFFF_FFFF else { throw .badArguments }
            } else if op == .createTTL {
                throw .badArguments
            }
            let fixed = try ZKAccess.fixup(acl, ids: ids)
            let parent = ZPath.parent(mode.sequential ? path + "0" : path)
            let operation = Cairn.Operation.createNode(
                path: path, data: Bytes(data ?? []), kind: mode.kind, sequential: mode.sequential, ttl: mode.kind == .ttl ? ttl ?? 0 : 0,
                owner: mode.kind == .ephemeral ? session : 0, acl: ACLEntry.stored(fixed), nullData: data == nil)
            return (operation, parent, ACLEntry.create)
        case .delete(let path, let version):
            try ZPath.validate(path)
            guard path != "/", !ZKServer.systemNodes.contains(where: { $0.path == path }) else { throw .badArguments }
            let parent = ZPath.parent(path)
            return (.deleteNode(path: path, version: version), parent, ACLEntry.delete)
        case .setData(let path, let data, let version):
            try ZPath.validate(path)
            return (.setNodeData(path: path, data: Bytes(data ?? []), version: version, nullData: data == nil), path, ACLEntry.write)
        case .setACL(let path, let acl, let version):
            try ZPath.validate(path)
            let fixed = try ZKAccess.fixup(acl, ids: ids)
            return (.setNodeACL(path: path, acl: fixed, version: version), path, ACLEntry.admin)
        default:
            throw .badArguments
        }
    }

    /// NoAuth when the node exists and the client lacks `perm` (a missing node is left to the
    /// operation, which answers NoNode).
    static func refused(_ tree: ZTree, _ path: String, _ perm: Int32, _ ids: [ZKIdentity]) -> TreeError? {
        guard let node = tree.nodes[path] else { return nil }
        return ZKAccess.allows(node.acl, perm, ids: ids) ? nil : .noAuth
    }

    // MARK: Reads

    /// Answers a read (or a request that needs no txn); returns the zxid it answered at.
    private func read(_ xid: Int32, _ op: ZKOpCode, _ request: ZKRequest) -> Int64 {
        let ids = self.ids
        switch request {
        case .exists(let path, let watch):
            guard validPath(path, xid) else { return 0 }
            let (stat, zxid, watches) = store.readTree(handler: watchHandler) { tree, _ in
                let stat = tree.nodes[path]?.stat
                return (stat, watch ? claim(stat == nil ? .exists : .data, path) : [])
            }
            record(watches)
            if let stat { reply(xid: xid, zxid: zxid, err: 0) { w in ZKCodec.stat(stat, into: &w) } } else { reply(xid: xid, zxid: zxid, err: TreeError.noNode.rawValue) }
            return zxid

        case .getData(let path, let watch):
            guard validPath(path, xid) else { return 0 }
            let (result, zxid, watches) = store.readTree(handler: watchHandler) { tree, _ -> (Result<([UInt8]?, Stat), TreeError>, watches: [(WatchKind, String)]) in
                guard let node = tree.nodes[path] else { return (.failure(.noNode), []) }
                guard ZKAccess.allows(node.acl, ACLEntry.read, ids: ids) else { return (.failure(.noAuth), []) }
                return (.success((node.dataIsNull ? nil : node.data.storage, node.stat)), watch ? claim(.data, path) : [])
            }
            record(watches)
            switch result {
            case .success(let (data, stat)): reply(xid: xid, zxid: zxid, err: 0) { w in w.buffer(data); ZKCodec.stat(stat, into: &w) }
            case .failure(let error): reply(xid: xid, zxid: zxid, err: error.rawValue)
            }
            return zxid

        case .getChildren(let path, let watch):
            guard validPath(path, xid) else { return 0 }
            let (result, zxid, watches) = store.readTree(handler: watchHandler) { tree, _ -> (Result<([String], Stat), TreeError>, watches: [(WatchKind, String)]) in
                guard let node = tree.nodes[path] else { return (.failure(.noNode), []) }
                guard ZKAccess.allows(node.acl, ACLEntry.read, ids: ids) else { return (.failure(.noAuth), []) }
                return (.success((node.children.sorted(), node.stat)), watch ? claim(.children, path) : [])
            }
            record(watches)
            switch result {
            case .success(let (children, stat)):
                reply(xid: xid, zxid: zxid, err: 0) { w in
                    w.vector(children) { w, name in w.string(name) }
                    if op == .getChildren2 { ZKCodec.stat(stat, into: &w) }
                }
            case .failure(let error): reply(xid: xid, zxid: zxid, err: error.rawValue)
            }
            return zxid

        case .getACL(let path):
            guard validPath(path, xid) else { return 0 }
            let (result, zxid) = store.readTree { tree, zxid -> (Result<([ACLEntry], Stat), TreeError>, Int64) in
                guard let node = tree.nodes[path] else { return (.failure(.noNode), zxid) }
                guard ZKAccess.allows(node.acl, ACLEntry.read | ACLEntry.admin, ids: ids) else { return (.failure(.noAuth), zxid) }
                return (.success((ZKAccess.visible(node, ids: ids), node.stat)), zxid)
            }
            switch result {
            case .success(let (acl, stat)):
                reply(xid: xid, zxid: zxid, err: 0) { w in
                    w.vector(acl) { w, entry in ZKCodec.acl(entry, into: &w) }
                    ZKCodec.stat(stat, into: &w)
                }
            case .failure(let error): reply(xid: xid, zxid: zxid, err: error.rawValue)
            }
            return zxid

        case .sync(let path):
            let zxid = store.readTree { _, zxid in zxid }
            reply(xid: xid, zxid: zxid, err: 0) { w in w.string(path) }
            return zxid

        case .check(let path, let version):
            guard validPath(path, xid) else { return 0 }
            let (err, zxid) = store.readTree { tree, zxid -> (Int32, Int64) in
                guard let node = tree.nodes[path] else { return (TreeError.noNode.rawValue, zxid) }
                return (version == -1 || version == node.stat.version ? 0 : TreeError.badVersion.rawValue, zxid)
            }
            reply(xid: xid, zxid: zxid, err: err)
            return zxid

        case .multi(let operations):  // multiRead: each read answered on its own
            let (results, zxid) = store.readTree { tree, zxid in (operations.map { readInMulti(tree, $0.1, ids) }, zxid) }
            reply(xid: xid, zxid: zxid, err: 0) { w in
                // Each: MultiHeader (type, done, err), then GetDataResponse, GetChildrenResponse
                // or ErrorResponse.
                for ((op, _), result) in zip(operations, results) {
                    switch result {
                    case .data(let data, let stat):
                        w.int(op.rawValue); w.boolean(false); w.int(0)
                        w.buffer(data); ZKCodec.stat(stat, into: &w)
                    case .children(let names):
                        w.int(op.rawValue); w.boolean(false); w.int(0)
                        w.vector(names) { w, name in w.string(name) }
                    case .error(let error):
                        w.int(-1); w.boolean(false); w.int(error.rawValue)
                        w.int(error.rawValue)
                    }
                }
                w.int(-1); w.boolean(true); w.int(-1)
            }
            return zxid

        case .auth(_, let scheme, let auth):
            let zxid = store.readTree { _, zxid in zxid }
            guard scheme == "digest", let text = String(bytes: auth, encoding: .utf8), let digest = ZKAccess.digest(text) else {
                server.options.logger.info("ZooKeeper client \(info.address): authentication with scheme '\(scheme)' failed")
                reply(xid: xid, zxid: zxid, err: TreeError.authFailed.rawValue)
                closeReason = "authentication failed"
                return zxid
            }
            let identity = ZKIdentity(scheme: "digest", id: digest)
            if !ids.contains(identity) { self.ids.append(identity) }
            reply(xid: xid, zxid: zxid, err: 0)
            return zxid

        case .setWatches(let relative, let data, let exist, let child, let persistent, let recursive):
            let (_, zxid, watches) = store.readTree(handler: watchHandler) { tree, zxid -> ((), watches: [(WatchKind, String)]) in
                // Catch up on what changed while the client was away, and watch the rest.
                var wanted: [(WatchKind, String)] = []
                for path in data {
                    if let node = tree.nodes[path] {
                        if node.stat.mzxid > relative { outbox.append(WatchEvent(type: .nodeDataChanged, path: path, zxid: zxid)) } else { wanted += claim(.data, path) }
                    } else { outbox.append(WatchEvent(type: .nodeDeleted, path: path, zxid: zxid)) }
                }
                for path in exist {
                    if tree.nodes[path] != nil { outbox.append(WatchEvent(type: .nodeCreated, path: path, zxid: zxid)) } else { wanted += claim(.exists, path) }
                }
                for path in child {
                    if let node = tree.nodes[path] {
                        if node.stat.pzxid > relative { outbox.append(WatchEvent(type: .nodeChildrenChanged, path: path, zxid: zxid)) } else { wanted += claim(.children, path) }
                    } else { outbox.append(WatchEvent(type: .nodeDeleted, path: path, zxid: zxid)) }
                }
                for path in persistent { wanted += claim(.persistent, path) }
                for path in recursive { wanted += claim(.persistentRecursive, path) }
                return ((), wanted)
            }
            record(watches)
            takeEvents()
            reply(xid: xid, zxid: zxid, err: 0)
            return zxid

        case .getEphemerals(let prefix):
            let (paths, zxid) = store.readTree { tree, zxid in
                ((tree.sessions[session]?.ephemerals.filter { prefix == "/" || $0.hasPrefix(prefix) } ?? []).sorted(), zxid)
            }
            reply(xid: xid, zxid: zxid, err: 0) { w in w.vector(paths) { w, path in w.string(path) } }
            return zxid

        case .getAllChildrenNumber(let path):
            guard validPath(path, xid) else { return 0 }
            let (result, zxid) = store.readTree { tree, zxid -> (Result<Int32, TreeError>, Int64) in
                guard let node = tree.nodes[path] else { return (.failure(.noNode), zxid) }
                guard ZKAccess.allows(node.acl, ACLEntry.read, ids: ids) else { return (.failure(.noAuth), zxid) }
                return (.success(Int32(clamping: Self.descendants(tree, path))), zxid)
            }
            switch result {
            case .success(let count): reply(xid: xid, zxid: zxid, err: 0) { w in w.int(count) }
            case .failure(let error): reply(xid: xid, zxid: zxid, err: error.rawValue)
            }
            return zxid

        case .addWatch(let path, let mode):
            guard validPath(path, xid) else { return 0 }
            guard mode == 0 || mode == 1 else {
                let zxid = store.readTree { _, zxid in zxid }
                reply(xid: xid, zxid: zxid, err: TreeError.badArguments.rawValue)
                return zxid
            }
            let kind: WatchKind = mode == 0 ? .persistent : .persistentRecursive
            let (_, zxid, watches) = store.readTree(handler: watchHandler) { _, _ in ((), claim(kind, path)) }
            record(watches)
            reply(xid: xid, zxid: zxid, err: 0)
            return zxid

        case .checkWatches(let path, let type), .removeWatches(let path, let type):
            let zxid = store.readTree { _, zxid in zxid }
            let keys = Self.watchKinds(type).map { ZKWatchKey(kind: $0, path: path) }.filter { outbox.has($0) }
            guard !keys.isEmpty else {
                reply(xid: xid, zxid: zxid, err: TreeError.noWatcher.rawValue)
                return zxid
            }
            if case .removeWatches = request { for id in outbox.remove(keys) { store.removeWatch(id) } }
            reply(xid: xid, zxid: zxid, err: 0)
            return zxid

        case .whoAmI:
            let zxid = store.readTree { _, zxid in zxid }
            reply(xid: xid, zxid: zxid, err: 0) { w in
                w.vector(ids) { w, id in
                    w.string(id.scheme)
                    w.string(id.scheme == "digest" ? String(id.id.prefix { $0 != ":" }) : id.id)
                }
            }
            return zxid

        default:
            let zxid = store.readTree { _, zxid in zxid }
            reply(xid: xid, zxid: zxid, err: TreeError.unimplemented.rawValue)
            return zxid
        }
    }

    /// One read of a multiRead, as its result is written.
    enum MultiReadResult {
        case data([UInt8]?, Stat)
        case children([String])
        case error(TreeError)
    }

    private func readInMulti(_ tree: ZTree, _ request: ZKRequest, _ ids: [ZKIdentity]) -> MultiReadResult {
        switch request {
        case .getData(let path, _), .getChildren(let path, _):
            guard (try? ZPath.validate(path)) != nil else { return .error(.badArguments) }
            guard let node = tree.nodes[path] else { return .error(.noNode) }
            guard ZKAccess.allows(node.acl, ACLEntry.read, ids: ids) else { return .error(.noAuth) }
            if case .getData = request { return .data(node.dataIsNull ? nil : node.data.storage, node.stat) }
            return .children(node.children.sorted())
        default:
            return .error(.badArguments)
        }
    }

    static func descendants(_ tree: ZTree, _ path: String) -> Int {
        var count = 0
        var pending = [path]
        while let next = pending.popLast() {
            guard let node = tree.nodes[next] else { continue }
            count += node.children.count
            for name in node.children { pending.append(next == "/" ? "/" + name : next + "/" + name) }
        }
        return count
    }

    /// ZooKeeper's `WatcherType`: 1 children, 2 data, 3 any, 4 persistent, 5 persistent recursive.
    static func watchKinds(_ type: Int32) -> [WatchKind] {
        switch type {
        case 1: return [.children]
        case 2: return [.data, .exists]
        case 4: return [.persistent]
        case 5: return [.persistentRecursive]
        default: return [.data, .exists, .children, .persistent, .persistentRecursive]
        }
    }

    private func validPath(_ path: String, _ xid: Int32) -> Bool {
        if (try? ZPath.validate(path)) != nil { return true }
        reply(xid: xid, zxid: store.readTree { _, zxid in zxid }, err: TreeError.badArguments.rawValue)
        return false
    }

    /// Under the store's read lock: the watch to register, unless this connection has it.
    private func claim(_ kind: WatchKind, _ path: String) -> [(WatchKind, String)] {
        outbox.claim(ZKWatchKey(kind: kind, path: path)) ? [(kind, path)] : []
    }

    /// Keeps the store's ids of the watches just set (one that fired already is forgotten).
    private func record(_ watches: [(kind: WatchKind, path: String, id: WatchID)]) {
        for watch in watches where !outbox.record(ZKWatchKey(kind: watch.kind, path: watch.path), watch.id) { store.removeWatch(watch.id) }
    }

    /// The store handler of one of this connection's watches: queues the event in the outbox.
    private lazy var watchHandler: (WatchKind, String) -> WatchHandler = { [outbox = info.outbox] kind, path in
        let key = ZKWatchKey(kind: kind, path: path)
        return { event in outbox.fired(key, event) }
    }

    // MARK: Replies

    /// Reused for every reply: the frame is written in place, its length patched in after.
    private var scratch = JuteWriter()

    /// `body` (written only for a success) is not escaping: a reply allocates no closure.
    private func reply(xid: Int32, zxid: Int64, err: Int32, _ body: (inout JuteWriter) -> Void = { _ in }) {
        scratch.reset()
        scratch.int(0)
        ZKCodec.replyHeader(xid: xid, zxid: zxid, err: err, into: &scratch)
        if err == 0 { body(&scratch) }
        scratch.patchInt(Int32(scratch.bytes.count - 4), at: 0)
        emit(scratch.bytes)
        server.packetsSent.add(1, ordering: .relaxed)
        info.lock.withLock { info.sent += 1 }
    }

    private func replyMulti(xid: Int32, zxid: Int64, _ result: Reply, _ ops: [ZKOpCode]) {
        reply(xid: xid, zxid: zxid, err: 0) { w in
            switch result {
            case .multiFailed(let codes):
                for code in codes { w.int(-1); w.boolean(false); w.int(code); w.int(code) }
            case .array(let results):
                for (op, result) in zip(ops, results) {
                    w.int(op.rawValue); w.boolean(false); w.int(0)
                    switch result {
                    case .created(let path, let stat):
                        w.string(path)
                        if op != .create { ZKCodec.stat(stat, into: &w) }
                    case .stat(let stat): ZKCodec.stat(stat, into: &w)
                    default: break
                    }
                }
            case .treeError(let error):
                for code in Self.failureCodes(ops.count, at: 0, error) { w.int(-1); w.boolean(false); w.int(code); w.int(code) }
            default: break
            }
            w.int(-1); w.boolean(true); w.int(-1)
        }
    }

    /// Moves fired watch events ahead of what is answered next.
    private func takeEvents() {
        for event in outbox.take() {
            scratch.reset()
            scratch.int(0)
            ZKCodec.replyHeader(xid: -1, zxid: event.zxid, err: 0, into: &scratch)
            ZKCodec.watcherEvent(type: event.type.rawValue, path: event.path, into: &scratch)
            scratch.patchInt(Int32(scratch.bytes.count - 4), at: 0)
            emit(scratch.bytes)
            server.packetsSent.add(1, ordering: .relaxed)
        }
    }

    /// The store fired watches: send the events now, unless replies are held for a commit (they
    /// then go first, when it lands).
    private func deliverEvents() {
        guard !closing, session != 0, batches.isEmpty, !busy else { return }
        takeEvents()
        flush()
    }

    private func flush() {
        guard let context, !closing else { return }
        if !out.isEmpty {
            let buffer = sendBuffer.holding(out, allocator: allocator)
            out.removeAll(keepingCapacity: out.count < 1 << 16)
            if closeReason != nil {
                context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)  // before the close below
            } else {
                context.write(wrapOutboundOut(buffer), promise: nil)
                flusher?.add(context)
            }
        }
        if closeReason != nil && queue.isEmpty && batches.isEmpty { close(context) }
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        // Replies written this tick wait for the loop's flusher, and a close drops unflushed
        // writes: what was answered before the close goes out first.
        context.flush()
        context.close(promise: nil)
    }

    // MARK: Four-letter words

    private func answerFourLetterWord(_ word: String, _ context: ChannelHandlerContext) {
        let text = ZKFourLetterWords.answer(word, server: server)
        closing = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(string: text))).whenComplete { _ in channel.close(promise: nil) }
    }

    static func shortName(_ op: ZKOpCode) -> String {
        switch op {
        case .ping: return "PING"
        case .create, .create2, .createContainer, .createTTL: return "CREA"
        case .delete, .deleteContainer: return "DELE"
        case .exists: return "EXIS"
        case .getData: return "GETD"
        case .setData: return "SETD"
        case .getACL: return "GACL"
        case .setACL: return "SACL"
        case .getChildren, .getChildren2: return "GETC"
        case .sync: return "SYNC"
        case .multi, .multiRead: return "MULT"
        case .closeSession: return "CLOS"
        case .setWatches, .setWatches2: return "SETW"
        case .auth: return "AUTH"
        default: return "\(op)".uppercased().prefix(4).description
        }
    }
}

/// ZooKeeper's `CreateMode` flags.
struct ZKCreateMode {
    let kind: NodeKind
    let sequential: Bool

    init?(rawValue flags: Int32) {
        switch flags {
        case 0: (kind, sequential) = (.persistent, false)
        case 1: (kind, sequential) = (.ephemeral, false)
        case 2: (kind, sequential) = (.persistent, true)
        case 3: (kind, sequential) = (.ephemeral, true)
        case 4: (kind, sequential) = (.container, false)
        case 5: (kind, sequential) = (.ttl, false)
        case 6: (kind, sequential) = (.ttl, true)
        default: return nil
        }
    }
}
