import CairnTesting
import Foundation

/// `cairn serve` started as a user starts it, with the ports its ready line reports
/// ("cairn: ready, RESP on 127.0.0.1:PORT, ZooKeeper on 127.0.0.1:PORT, ..."). The test stops
/// it by its process id.
struct ServeProcess {
    let process: Process
    let respPort: Int
    /// The ZooKeeper port, when the listener runs.
    let zkPort: Int?
    let output: Pipe

    init(arguments: [String]) throws {
        process = Process()
        process.executableURL = try cairnExecutable()
        process.arguments = arguments
        output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // Log lines on standard error may come first; bounded to 20 s.
        var line = Data()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty { break }
            if byte.first == UInt8(ascii: "\n") {
                if String(decoding: line, as: UTF8.self).contains("ready") { break }
                line = Data()
                continue
            }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        func port(after label: String) -> Int? {
            guard let range = text.range(of: label + " on 127.0.0.1:") else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
        guard let resp = port(after: "RESP") else {
            process.terminate()
            throw CairnCLIError("cairn serve did not start: \(text)")
        }
        respPort = resp
        zkPort = port(after: "ZooKeeper")
        // Keep draining its output so a chatty server never blocks on a full pipe.
        let handle = output.fileHandleForReading
        DispatchQueue.global().async { while !handle.availableData.isEmpty {} }
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        process.terminate()
        process.waitUntilExit()
    }
}
