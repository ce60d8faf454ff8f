import CairnStorage
import CairnTesting
import Foundation
import SystemPackage
import Testing

/// `cairn check DIR [--fix]` run as a user runs it.
@Suite struct CheckCommandTests {
    func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        try runCairn(arguments, input: input)
    }

    func makeLog(_ directory: TemporaryDirectory, records: Int) throws -> [String] {
        let log = try Log.open(directory: directory.path, options: LogOptions(fsyncPolicy: .no, segmentSize: 8192))
        for i in 1...records { try log.append(payload(i, size: 100)) }
        try log.close()
        return try PosixFileSystem().listDirectory(directory.path).filter { $0.hasSuffix(".seg") }.sorted()
    }

    func flipByte(_ path: FilePath, at offset: Int) throws {
        let handle = try PosixFileSystem().open(path, create: false)
        var byte = try handle.readBytes(at: offset, count: 1)
        byte[0] ^= 0x40
        try byte.withUnsafeBytes { try handle.write($0, at: offset) }
        try handle.close()
    }

    @Test func anIntactLogChecksOK() throws {
        let directory = TemporaryDirectory("check-ok")
        defer { directory.cleanup() }
        _ = try makeLog(directory, records: 200)
        let (status, output) = try run(["check", directory.path.string])
        #expect(status == 0)
        #expect(output.contains("valid records: 200") && output.contains("OK"))
    }

    @Test func damageIsReportedThenFixedWithConsent() throws {
        let directory = TemporaryDirectory("check-fix")
        defer { directory.cleanup() }
        let names = try makeLog(directory, records: 200)
        try flipByte(directory.path.appending(names[1]), at: 3 * 128 + 50)

        let (status, output) = try run(["check", directory.path.string])
        #expect(status == 1, "\(output)")
        #expect(output.contains("DAMAGED") && output.contains(names[1]) && output.contains("offset 384"))

        // Refusing the prompt changes nothing.
        let (declined, declinedOutput) = try run(["check", "--fix", directory.path.string], input: "n\n")
        #expect(declined == 1 && declinedOutput.contains("Nothing changed"))
        #expect(try run(["check", directory.path.string]).status == 1)

        let (fixed, fixOutput) = try run(["check", "--fix", "--yes", directory.path.string])
        #expect(fixed == 0, "\(fixOutput)")
        #expect(fixOutput.contains("--fix will: truncate \(names[1]) at offset 384"))
        let (after, afterOutput) = try run(["check", directory.path.string])
        #expect(after == 0 && afterOutput.contains("OK"), "\(afterOutput)")
        try Log.open(directory: directory.path).close()
    }

    @Test func aTornTailIsReportedButNotAnError() throws {
        let directory = TemporaryDirectory("check-torn")
        defer { directory.cleanup() }
        let names = try makeLog(directory, records: 10)
        let last = directory.path.appending(names.last!)
        let handle = try PosixFileSystem().open(last, create: false)
        try handle.truncate(to: 9 * 128 + 70)
        try handle.close()
        let (status, output) = try run(["check", directory.path.string])
        #expect(status == 0, "\(output)")
        #expect(output.contains("torn tail") && output.contains("offset 1152"))
    }

    @Test func aMissingDirectoryIsAClearError() throws {
        let (status, output) = try run(["check", "/nonexistent/cairn-dir"])
        #expect(status == 2 && output.contains("does not exist"))
    }
}
