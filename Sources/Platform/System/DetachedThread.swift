import CQLSys
import Glibc

/// A thread of its own for a long-running loop (a daemon's conductor, one session's sender),
/// started on `pthread_create` directly: Foundation's `Thread` lives in the ICU-backed part of
/// Foundation that the node's initrd leaves out.
public enum DetachedThread {
    /// Runs `body` on a new detached thread.
    /// - Parameters:
    ///   - name: shown by `top -H` and `ps -L` (the kernel keeps its first 15 bytes).
    ///   - body: what the thread does; the thread ends when it returns.
    /// - Throws: `SystemCallError` when the system will not create another thread (`EAGAIN`
    ///   under a thread or memory limit): the caller decides what fails with it.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        let box = Unmanaged.passRetained(Job(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(
            &thread, nil,
            { raw in
                // The box was retained for exactly this thread; it is released here, once.
                guard let raw else { return nil }
                let job = Unmanaged<Job>.fromOpaque(raw).takeRetainedValue()
                _ = qlsys_name_this_thread(job.name)
                job.body()
                return nil
            }, box)
        guard status == 0 else {
            Unmanaged<Job>.fromOpaque(box).release()
            throw SystemCallError("pthread_create", errno: status)
        }
        pthread_detach(thread)
    }

    private final class Job: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}
