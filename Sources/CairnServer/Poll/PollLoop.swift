import CairnStorage
import Foundation
import HeapModule
import NIOCore
import Synchronization
import CEpoll
#if canImport(Glibc)
import Glibc
#endif

/// What a ``PollLoop`` calls when a file descriptor it watches is ready.
protocol PollHandler: AnyObject {
    /// `events`: epoll's bits (`EPOLLIN`, `EPOLLOUT`, `EPOLLHUP`, `EPOLLERR`).
    func pollReady(_ events: UInt32)
    /// The loop is stopping: close, after sending what can be sent without waiting.
    func pollStopping()
}

/// The RESP server's event loop: one thread, one epoll set, level-triggered, with NIO's
/// `EventLoop` interface (tasks, scheduled tasks, promises), so the parts shared with the
/// ZooKeeper server (``LoopCommitter``, ``LoopBatch``, ``PerLoop``) run on it unchanged.
///
/// Why not NIO's channels: at `redis-benchmark -P 1` a request is one `read` and one `write`
/// either way, but NIO's channel pipeline around them (its read allocator, `isOpen` checks, the
/// outbound pending-writes queue, the flush chain) cost about as much user time again as
/// everything Cairn does for a GET, and that showed as queueing in the p99. Here a readable
/// socket is read into one buffer the loop reuses, its requests are run on views of it, and the
/// replies go out with one `send` from the connection's own bytes.
///
/// A tick: wait for events (not at all when tasks are waiting; until the next timer otherwise),
/// handle each ready descriptor, run the tasks queued meanwhile (a group commit's, see
/// ``LoopCommitter``), run due timers, then send every connection's replies
/// (``flushLater(_:)``) — as Redis writes its replies before it sleeps again.
final class PollLoop: EventLoop, @unchecked Sendable {
    let name: String
    private let epoll: Int32
    private let wakeFD: Int32
    private var thread: pthread_t?
    /// Handlers by file descriptor (descriptors are small integers). Loop thread only.
    private var handlers: [PollHandler?] = []
    /// Tasks queued from the loop's own thread (no lock), and from others (locked; they also
    /// signal `wakeFD`, once until the loop takes them). Once `closed`, tasks from others are
    /// dropped: the loop has ended and `wakeFD` is closed (its number may belong to another
    /// file by then, so it is signaled only under the lock).
    private var localTasks: [@Sendable () -> Void] = []
    private let remote = Mutex<(tasks: [@Sendable () -> Void], signaled: Bool, closed: Bool)>(([], false, false))
    private var timers = Heap<TimerEntry>()
    private var timerTasks: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 0
    /// Sockets with replies to send at the end of this tick.
    private var toFlush: [PollSocket] = []
    private var flushing: [PollSocket] = []
    /// The buffer sockets read into (one a loop: a request is run on views of it).
    var readBuffer = ByteBufferAllocator().buffer(capacity: PollLoop.readSize)
    static let readSize = 64 << 10
    private var stopping = false
    private let finished = Mutex<(done: Bool, callbacks: [(DispatchQueue, @Sendable (Error?) -> Void)])>((false, []))
    private let exited = DispatchSemaphore(value: 0)

    private struct TimerEntry: Comparable {
        let deadline: NIODeadline
        let id: UInt64
        static func < (a: TimerEntry, b: TimerEntry) -> Bool { (a.deadline, a.id) < (b.deadline, b.id) }
    }

    /// Starts the loop's thread.
    init(name: String) throws {
        self.name = name
        epoll = try SocketCalls.makeEpoll()
        do { wakeFD = try SocketCalls.makeEventFD() } catch { SocketCalls.close(epoll); throw error }
        try SocketCalls.control(epoll: epoll, EPOLL_CTL_ADD, fd: wakeFD, events: EPOLLIN.rawValue)
        let started = DispatchSemaphore(value: 0)
        let box = Unmanaged.passRetained(StartBox(loop: self, started: started))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<StartBox>.fromOpaque(argument!).takeRetainedValue()
            box.loop.thread = pthread_self()
            let loop = box.loop
            box.started.signal()
            loop.run()
            return nil
        }, box.toOpaque())
        precondition(result == 0, "pthread_create failed: \(result)")
        started.wait()
        pthread_detach(thread)
    }

    private final class StartBox {
        let loop: PollLoop
        let started: DispatchSemaphore
        init(loop: PollLoop, started: DispatchSemaphore) { self.loop = loop; self.started = started }
    }

    // MARK: Descriptors (loop thread only)

    func register(_ fd: Int32, _ handler: PollHandler, events: UInt32) throws {
        preconditionInEventLoop()
        precondition(fd >= 0, "registering fd \(fd)")
        try SocketCalls.control(epoll: epoll, EPOLL_CTL_ADD, fd: fd, events: events)
        if Int(fd) >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - handlers.count)) }
        assert(handlers[Int(fd)] == nil, "fd \(fd) registered twice")
        handlers[Int(fd)] = handler
    }

    func changeInterest(_ fd: Int32, events: UInt32) {
        preconditionInEventLoop()
        try? SocketCalls.control(epoll: epoll, EPOLL_CTL_MOD, fd: fd, events: events)
    }

    /// Stops watching `fd` (before it is closed: its number may be reused at once).
    func deregister(_ fd: Int32) {
        preconditionInEventLoop()
        try? SocketCalls.control(epoll: epoll, EPOLL_CTL_DEL, fd: fd, events: 0)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    /// `socket` sends its replies at the end of this tick (or earlier, see ``flushNow()``).
    func flushLater(_ socket: PollSocket) {
        toFlush.append(socket)
    }

    /// Sends every reply waiting for the end of the tick now (before the loop blocks in a sync).
    func flushNow() {
        while !toFlush.isEmpty {
            swap(&toFlush, &flushing)
            for socket in flushing { socket.flushNow() }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    // MARK: The loop

    private func run() {
        let events = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        while !stopping {
            let timeout: Int32 = localTasks.isEmpty && !hasRemoteTasks ? timerTimeout() : 0
            let count = SocketCalls.wait(epoll: epoll, into: events, milliseconds: timeout)
            for index in 0..<count {
                let fd = Int(events[index].data.fd)
                if fd == wakeFD {
                    SocketCalls.drain(eventFD: wakeFD)
                } else if fd < handlers.count, let handler = handlers[fd] {
                    handler.pollReady(events[index].events)
                }
            }
            runTasks()
            runDueTimers()
            flushNow()
        }
        for handler in handlers { handler?.pollStopping() }
        runTasks()
        flushNow()
        handlers.removeAll()
        timerTasks.removeAll()
        remote.withLock { state in
            state.closed = true
            state.tasks.removeAll()
            SocketCalls.close(wakeFD)
        }
        SocketCalls.close(epoll)
        let callbacks = finished.withLock { state in
            state.done = true
            return state.callbacks
        }
        for (queue, callback) in callbacks { queue.async { callback(nil) } }
        exited.signal()
    }

    private var hasRemoteTasks: Bool { remote.withLock { !$0.tasks.isEmpty } }

    private func runTasks() {
        var tasks = remote.withLock { state -> [@Sendable () -> Void] in
            state.signaled = false
            var taken: [@Sendable () -> Void] = []
            swap(&taken, &state.tasks)
            return taken
        }
        if !localTasks.isEmpty {
            // Queued on this thread, after those from others already waiting (both in order).
            tasks.append(contentsOf: localTasks)
            localTasks.removeAll(keepingCapacity: true)
        }
        for task in tasks { task() }
    }

    /// Milliseconds until the next timer (rounded up), -1 without one.
    private func timerTimeout() -> Int32 {
        guard let first = timers.min else { return -1 }
        let now = NIODeadline.now()
        guard first.deadline > now else { return 0 }
        return Int32(clamping: ((first.deadline - now).nanoseconds + 999_999) / 1_000_000)
    }

    private func runDueTimers() {
        let now = NIODeadline.now()
        while let first = timers.min, first.deadline <= now {
            timers.removeMin()
            if let task = timerTasks.removeValue(forKey: first.id) { task() }
        }
    }

    /// Stops the loop: its handlers close (sockets send what they can first), queued tasks run
    /// once more, and the thread ends. Waits for that; never call it from the loop.
    func stop() {
        preconditionNotInEventLoop()
        let already = finished.withLock { $0.done }
        guard !already else { return }
        execute { [self] in stopping = true }
        exited.wait()
    }

    // MARK: EventLoop

    var inEventLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(pthread_self(), thread) != 0
    }

    func execute(_ task: @escaping @Sendable () -> Void) {
        if inEventLoop {
            localTasks.append(task)
            return
        }
        remote.withLock { state in
            guard !state.closed else { return }  // (as NIO drops a task for a loop that has shut down)
            state.tasks.append(task)
            if !state.signaled {
                state.signaled = true
                SocketCalls.signal(eventFD: wakeFD)
            }
        }
    }

    @discardableResult
    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        let add: @Sendable () -> Void = { [self] in
            nextTimerID += 1
            let id = nextTimerID
            timers.insert(TimerEntry(deadline: deadline, id: id))
            timerTasks[id] = {
                // (T need not be Sendable: it is made and handed over on the loop)
                let isolated = promise.assumeIsolatedUnsafeUnchecked()
                do { isolated.succeed(try task()) } catch { promise.fail(error) }
            }
            promise.futureResult.whenFailure { [self] _ in timerTasks[id] = nil }  // (cancelled)
        }
        if inEventLoop { add() } else { execute(add) }
        // Cancelling fails the promise, which (above) drops the task.
        return Scheduled(promise: promise, cancellationTask: {})
    }

    @discardableResult
    func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on \(name)'s thread", file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on \(name)'s thread", file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable (Error?) -> Void) {
        let done = finished.withLock { state -> Bool in
            if !state.done { state.callbacks.append((queue, callback)) }
            return state.done
        }
        if done { queue.async { callback(nil) } } else { execute { [self] in stopping = true } }
    }

    func next() -> EventLoop { self }

    func any() -> EventLoop { self }

    func makeIterator() -> EventLoopIterator { EventLoopIterator([self]) }

    var description: String { "PollLoop(\(name))" }
}
