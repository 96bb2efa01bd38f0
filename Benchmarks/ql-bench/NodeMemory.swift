import Foundation
import LabSupport

/// The nodes' memory, warmed before a timed delivery.
enum NodeMemory {
    /// Writes and removes as much as the nodes will write, before every delivery. On a VM
    /// with free page reporting (this one: Firecracker, `page_reporting_order=11`) memory freed
    /// more than ~2 s ago has gone back to the host, and touching it again costs ~0.4 s of system
    /// time per 512 MiB (`docs/PERFORMANCE.md`), more with huge pages, which come from exactly
    /// the large free blocks the VM hands back. Without this the first delivery, and every one
    /// after a slower system's, pays it alone.
    /// - Parameters:
    ///   - work: A directory on the tmpfs the copies will be written to.
    ///   - copies: How many copies the nodes write.
    ///   - mebibytes: The size of each.
    static func warm(in work: URL, copies: Int, mebibytes: Int) throws {
        let files = (1...max(1, copies)).map { work.appendingPathComponent("warm\($0)").path }
        // Sized first and written in place, as the client writes its copy: on a huge=within_size
        // tmpfs only pages inside the file's size become huge pages.
        for f in files {
            try Lab.run(
                "/bin/sh",
                [
                    "-c",
                    "truncate -s \(mebibytes)M \(f) && dd if=/dev/zero of=\(f) bs=1M count=\(mebibytes) conv=notrunc status=none",
                ])
        }
        for f in files { try FileManager.default.removeItem(atPath: f) }
    }
}
