/// A named boot configuration: what pxelinux loads and the kernel command line.
public struct BootConfig: Codable, Sendable, Equatable {
    public var name: String
    /// Paths below the TFTP root (e.g. `qlustar/images/compute.vmlinuz`).
    public var kernel: String
    public var initrd: String
    /// Kernel parameters (`ql.server=… ql.image=… early-shell debug`).
    public var append: String

    public init(name: String, kernel: String, initrd: String, append: String) {
        self.name = name
        self.kernel = kernel
        self.initrd = initrd
        self.append = append
    }
}
