// swift-tools-version: 6.1
// libFuzzer targets for Cairn's decoders. Build and run with Fuzz/run (see Fuzz/README.md):
//   swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which differs between checkouts.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let cairn = root.lastPathComponent.lowercased()

let package = Package(
    name: "CairnFuzz",
    dependencies: [.package(path: root.path)],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "FuzzRecordDecoder",
            dependencies: ["FuzzDriver", .product(name: "CairnStorage", package: cairn)]
        ),
        .executableTarget(
            name: "FuzzSegmentScanner",
            dependencies: ["FuzzDriver", .product(name: "CairnStorage", package: cairn)]
        ),
        .executableTarget(
            name: "FuzzTxnDecoder",
            dependencies: ["FuzzDriver", .product(name: "Cairn", package: cairn)]
        ),
        .executableTarget(
            name: "FuzzRESPParser",
            dependencies: ["FuzzDriver", .product(name: "Cairn", package: cairn), .product(name: "CairnServer", package: cairn)]
        ),
        .executableTarget(
            name: "FuzzJuteDecoder",
            dependencies: ["FuzzDriver", .product(name: "CairnServer", package: cairn)]
        ),
        .executableTarget(
            name: "FuzzSnapshotDecoder",
            dependencies: ["FuzzDriver", .product(name: "Cairn", package: cairn), .product(name: "CairnStorage", package: cairn),
                           .product(name: "CairnTesting", package: cairn)]
        ),
    ],
    swiftLanguageModes: [.v6]
)
