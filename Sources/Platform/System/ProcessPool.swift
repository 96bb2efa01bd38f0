import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Runs many short programs at once — at most `parallel` at a time, each killed when it runs
/// longer than `timeout` — and keeps what each wrote. `qluman power` runs one `ipmitool` per BMC
/// this way: a hundred BMCs take the time of the slowest few, and one that never answers costs
/// its timeout, not everyone's.
package struct ProcessPool {
    package struct Job: Sendable {
        package var program: String
        package var arguments: [String]
        /// Set on top of this process' environment (secrets go here, never into `arguments`).
        package var environment: [String: String]

        package init(program: String, arguments: [String], environment: [String: String] = [:]) {
            self.program = program
            self.arguments = arguments
            self.environment = environment
        }
    }

    package struct Result: Sendable {
        /// The program's end; nil when it was killed at the timeout or could not start.
        package var termination: Posix.Termination?
        package var timedOut: Bool
        package var output: String
        package var errors: String
        /// Why it could not start, when it could not.
        package var startError: String?
        package var seconds: Double
    }

    package var parallel: Int
    package var timeout: Double
    /// The most bytes kept of each stream of each job.
    package var limit = 65_536

    package init(parallel: Int, timeout: Double) {
        self.parallel = max(1, parallel)
        self.timeout = timeout
    }

    /// Runs `jobs`; the results are in the same order. `progress` is called after each end with
    /// the count done so far.
    package func run(_ jobs: [Job], progress: (Int) -> Void = { _ in }) -> [Result] {
        struct Running {
            var index: Int
            var process: Subprocess
            var started: UInt64
            var output: [UInt8] = []
            var errors: [UInt8] = []
        }
        var results = [Result?](repeating: nil, count: jobs.count)
        var running: [Running] = []
        var next = 0
        var done = 0
        let timeoutNanos = UInt64(max(0, min(timeout, 1e6)) * 1e9)
        while done < jobs.count {
            while running.count < parallel, next < jobs.count {
                let job = jobs[next]
                do {
                    let p = try Subprocess(job.program, job.arguments, adding: job.environment)
                    running.append(Running(index: next, process: p, started: MonotonicClock.nanoseconds()))
                } catch {
                    results[next] = Result(
                        termination: nil, timedOut: false, output: "", errors: "", startError: error.message,
                        seconds: 0)
                    done += 1
                    progress(done)
                }
                next += 1
            }
            var still: [Running] = []
            let now = MonotonicClock.nanoseconds()
            for var r in running {
                if let chunk = r.process.readAvailable(), r.output.count < limit {
                    r.output += chunk.prefix(limit - r.output.count)
                }
                if let chunk = r.process.readAvailableErrors(), r.errors.count < limit {
                    r.errors += chunk.prefix(limit - r.errors.count)
                }
                let over = now &- r.started > timeoutNanos
                var end = r.process.poll()
                if end == nil, over {
                    r.process.kill()
                    end = r.process.wait()
                }
                guard let end else {
                    still.append(r)
                    continue
                }
                // What it wrote just before its end.
                let rest = r.process.collect(limit: limit)
                r.output += rest.output.prefix(max(0, limit - r.output.count))
                r.errors += rest.errors.prefix(max(0, limit - r.errors.count))
                results[r.index] = Result(
                    termination: over ? nil : end, timedOut: over, output: String(decoding: r.output, as: UTF8.self),
                    errors: String(decoding: r.errors, as: UTF8.self), startError: nil,
                    seconds: Double(now &- r.started) / 1e9)
                done += 1
                progress(done)
            }
            running = still
            if !running.isEmpty { usleep(5_000) }
        }
        return results.map {
            $0 ?? Result(termination: nil, timedOut: false, output: "", errors: "", startError: "not run", seconds: 0)
        }
    }
}
