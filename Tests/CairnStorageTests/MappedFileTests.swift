@testable import CairnStorage
import CairnTesting
import Foundation
import Synchronization
import Testing

/// A file written through its mapping, with pages faulted in ahead of the writes (what the
/// log's flusher does under `no` and `everysec`).
@Suite struct MappedFileTests {
    @Test func prefaultedPagesKeepWhatIsWrittenAndTheRestReadsAsZeros() throws {
        let directory = TemporaryDirectory("mapped")
        defer { directory.cleanup() }
        let file = try PosixFileSystem().open(directory.path.appending("f"), create: true)
        let size = 256 << 10
        try file.preallocate(size: size)
        try file.mapForWriting(size: size)
        file.prefault(0..<(128 << 10))
        file.prefault(100..<(size * 4))  // past the mapping: clamped
        file.prefault(size..<(size + 10))  // wholly past it: nothing
        let record = [UInt8](repeating: 0xAB, count: 1000)
        var offsets: [Int] = []
        for offset in stride(from: 0, to: size - record.count, by: 7919) {
            try record.withUnsafeBytes { try file.write($0, at: offset) }
            offsets.append(offset)
        }
        try file.syncData()
        let expected = offsets.reduce(into: [UInt8](repeating: 0, count: size)) { bytes, offset in
            bytes.replaceSubrange(offset..<(offset + record.count), with: record)
        }
        #expect(try file.readBytes(at: 0, count: size) == expected)
        try file.truncate(to: 1000)  // unmaps
        file.prefault(0..<size)  // no mapping: nothing
        #expect(try file.size() == 1000)
        try file.close()
        file.prefault(0..<size)
    }

    /// A prefault on another thread never touches a mapping that is going away: mapping,
    /// truncating and closing wait for it.
    @Test func prefaultsRaceRemapsSafely() throws {
        let directory = TemporaryDirectory("mapped-race")
        defer { directory.cleanup() }
        let file = try PosixFileSystem().open(directory.path.appending("f"), create: true)
        let size = 1 << 20
        let stop = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)
        startThread(name: "prefault") {
            var n = 0
            while !stop.load(ordering: .relaxed) && n < 1_000_000 {
                file.prefault(0..<size)
                n += 1
            }
            done.signal()
        }
        let deadline = Date().addingTimeInterval(1)
        var rounds = 0
        while rounds < 200 && Date() < deadline {
            try file.preallocate(size: size)
            try file.mapForWriting(size: size)
            try [UInt8](repeating: 7, count: 64).withUnsafeBytes { try file.write($0, at: size - 64) }
            try file.truncate(to: 0)
            rounds += 1
        }
        stop.store(true, ordering: .relaxed)
        done.wait()
        try file.close()
        #expect(rounds > 0)
    }
}
