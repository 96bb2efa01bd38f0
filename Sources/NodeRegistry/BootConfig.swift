/// A named boot configuration: what pxelinux loads and the kernel command line.
public struct BootConfig: Codable, Sendable, Equatable {
    public var name: String
    /// Paths below the TFTP root (e.g. `qlustar/images/compute.vmlinuz`).
    public var kernel: String
    public var initrd: String
    /// Kernel parameters (`ql.server=… ql.image=… early-shell debug`).
    public var append: String
    /// What UEFI nodes load instead, when the administrator says so (nil: the same as BIOS nodes).
    public var uefiKernel: String?
    public var uefiInitrd: String?
    public var uefiAppend: String?

    public init(
        name: String, kernel: String, initrd: String, append: String, uefiKernel: String? = nil,
        uefiInitrd: String? = nil, uefiAppend: String? = nil
    ) {
        self.name = name
        self.kernel = kernel
        self.initrd = initrd
        self.append = append
        self.uefiKernel = uefiKernel
        self.uefiInitrd = uefiInitrd
        self.uefiAppend = uefiAppend
    }

    /// The firmware a node boots with: legacy BIOS (pxelinux.0) or x86-64 UEFI (syslinux.efi).
    public enum Firmware: String, Codable, Sendable, CaseIterable {
        case bios, uefi
    }

    /// Kernel, initrd and parameters as `firmware` boots them.
    public func boot(_ firmware: Firmware) -> (kernel: String, initrd: String, append: String) {
        guard firmware == .uefi else { return (kernel, initrd, append) }
        return (uefiKernel ?? kernel, uefiInitrd ?? initrd, uefiAppend ?? append)
    }
}
