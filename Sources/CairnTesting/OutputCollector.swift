import Foundation

/// Reads a child's standard output on a background thread until it closes.
public final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    public init(_ handle: Foundation.FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.lock(); data.append(chunk); lock.unlock()
            }
            done.signal()
        }
    }

    /// Waits (at most 10 s) for the end of the output and returns it as text.
    public func finish() -> String {
        _ = done.wait(timeout: .now() + 10)
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}
