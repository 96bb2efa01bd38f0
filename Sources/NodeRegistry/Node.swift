/// A registered node.
public struct Node: Codable, Sendable, Equatable {
    public var name: String
    public var macs: [String]
    public var ip: String
    public var prefix: Int
    public var image: String?
    public var group: String?
    /// The node's own boot configuration (nil: its group's, else `default`).
    public var bootConfig: String?
    /// The address of the node's BMC (`10.2.0.5` or `10.2.0.5:6230`) when it is registered
    /// with the node; nil: the one its `ipmi` config gives, if any.
    public var bmc: String?

    public init(
        name: String, macs: [String], ip: String, prefix: Int, image: String?, group: String?,
        bootConfig: String? = nil,
        bmc: String? = nil
    ) {
        self.name = name
        self.macs = macs
        self.ip = ip
        self.prefix = prefix
        self.image = image
        self.group = group
        self.bootConfig = bootConfig
        self.bmc = bmc
    }
}
