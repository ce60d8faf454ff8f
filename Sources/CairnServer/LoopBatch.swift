import NIOCore

/// Items one event loop's connections hand in during a tick, handled together once the loop
/// has read and run everything that arrived in it (a task runs after the tick's I/O). The
/// shape of the loop's group commit (``LoopCommitter``) and of its reply flushes
/// (``LoopFlusher``). Only the loop's thread uses it.
final class LoopBatch<Item> {
    private let loop: EventLoop
    private let handle: ([Item]) -> Void
    private var items: [Item] = []
    /// The other buffer: the two are swapped, never copied, so neither allocates again.
    private var spare: [Item] = []
    private var scheduled = false

    init(loop: EventLoop, _ handle: @escaping ([Item]) -> Void) {
        self.loop = loop
        self.handle = handle
    }

    func add(_ item: Item) {
        loop.preconditionInEventLoop()
        items.append(item)
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute { bound.value.run() }
    }

    /// Handles what was handed in so far at once, ahead of the scheduled task (which then
    /// finds less, or nothing, to do).
    func runNow() {
        loop.preconditionInEventLoop()
        guard !items.isEmpty else { return }
        swap(&items, &spare)  // what `handle` adds meanwhile waits for the next run
        handle(spare)
        spare.removeAll(keepingCapacity: true)
    }

    private func run() {
        scheduled = false
        runNow()
    }
}
