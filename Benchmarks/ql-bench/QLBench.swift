import ArgumentParser

@main
struct QLBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ql-bench",
        abstract: "Benchmarks of the ql-mcast engine against reference implementations and peers.",
        subcommands: [
            FECBenchmark.self, TransferBenchmark.self, PeersBenchmark.self, ImageBenchmark.self,
            ImageBuildBenchmark.self, ConfigureBenchmark.self, BootBenchmark.self,
            ConfigureWorker.self, ProbeSend.self, ProbeReceive.self,
        ]
    )
}
