import ArgumentParser

@main
struct CairnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "Cairn: a persistent storage engine with a log-structured core.",
        subcommands: [ServeCommand.self, CheckCommand.self, SnapshotCommand.self, InspectCommand.self, BenchCommand.self, DrillCommand.self, LogWriterCommand.self, DrillChildCommand.self]
    )

    static func main() async {
        Allocator.configure()
        await main(nil)
    }
}
