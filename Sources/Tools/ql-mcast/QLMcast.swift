import ArgumentParser
import Transport

@main
struct QLMcast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-mcast",
        abstract: "Send or receive one object over reliable multicast (the engine's low-level tool)."
    )
}
