#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CairnStorage

/// A progress line on standard error for long operations, redrawn at most every half second
/// and only when standard error is a terminal.
final class Progress: @unchecked Sendable {
    private let label: String
    private let verb: String
    private let enabled = isatty(2) != 0
    private var bytes = 0
    private var lastDraw = monotonicNanoseconds()
    private var drawn = false

    init(label: String, verb: String = "read") {
        self.label = label
        self.verb = verb
    }

    func advance(bytes count: Int) {
        bytes += count
        guard enabled, bytes & 0xFFFF < count || count > 0xFFFF else { return }
        draw()
    }

    /// Sets the total so far (for callbacks that report totals).
    func set(bytes total: Int) {
        bytes = total
        guard enabled else { return }
        draw()
    }

    private func draw() {
        let now = monotonicNanoseconds()
        if now - lastDraw > 500_000_000 {
            lastDraw = now
            drawn = true
            writeText(2, "\r\(label): \(formatBytes(bytes)) \(verb)")
        }
    }

    func finish() {
        if drawn { writeText(2, "\r\u{1B}[K") }
    }
}

func writeText(_ fd: Int32, _ text: String) {
    var copy = text
    copy.withUTF8 { bytes in _ = write(fd, bytes.baseAddress, bytes.count) }
}
