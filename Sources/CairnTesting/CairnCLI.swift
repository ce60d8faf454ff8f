import CairnStorage
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The `cairn` executable built beside the running test bundle.
public func cairnExecutable() throws -> URL {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    var candidates = [bundle.appendingPathComponent("cairn")]
    candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("cairn"))
    if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) { return found }
    throw CairnCLIError("the cairn executable is not beside the tests (\(candidates.map(\.path))); run `swift build` first")
}

public struct CairnCLIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `cairn` with `arguments` as a user would (optionally typing `input`), and returns its
/// exit status and everything it printed (standard output and error together).
public func runCairn(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
    try runProgram(cairnExecutable(), arguments, input: input)
}

/// Runs a program to its end, optionally typing `input`; its exit status and everything it
/// printed (standard output and error together).
public func runProgram(_ executable: URL, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A fresh directory under /tmp for tests on the real disk, removed by `cleanup()`.
public struct TemporaryDirectory: Sendable {
    public let path: FilePath
    public init(_ name: String = "test") {
        var template = Array("/tmp/cairn-\(name)-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = FilePath(String(cString: template.withUnsafeBufferPointer { $0.baseAddress! }))
    }
    public func cleanup() { removeAll(path) }
}

/// Removes a file or a directory tree.
public func removeAll(_ path: FilePath) {
    if let names = try? PosixFileSystem().listDirectory(path) {
        for name in names { removeAll(path.appending(name)) }
        rmdir(path.string)
    } else {
        unlink(path.string)
    }
}
