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

    /// Waits until the output holds `line` as a whole line (true), or the output ends or
    /// `seconds` pass without it (false). Polls every millisecond: a child's readiness is worth
    /// no more precision than that.
    public func waitForLine(_ line: String, seconds: Double) -> Bool {
        let needle = Data((line + "\n").utf8)
        func holdsLine() -> Bool {
            lock.lock(); defer { lock.unlock() }
            return data.starts(with: needle) || data.range(of: Data("\n".utf8) + needle) != nil
        }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if holdsLine() { return true }
            if done.wait(timeout: .now() + .milliseconds(1)) == .success {
                done.signal()  // keep the end of the output signalled for `finish`
                return holdsLine()
            }
        }
        return false
    }

    /// Waits (at most 10 s) for the end of the output and returns it as text.
    public func finish() -> String {
        _ = done.wait(timeout: .now() + 10)
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}
