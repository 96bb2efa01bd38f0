import Platform

/// The registry as ql-mcastd's and qlumand's admission: a host is a node when its source address
/// is a registered node's, the neighbour table's MAC for that address is one of the node's, and it
/// presents the node's enrollment token when one is set.
public struct RegistryAdmission: NodeAdmission {
    public let registry: Registry

    public init(registry: Registry) { self.registry = registry }

    public func admit(address: String, mac: String?, token: String?) -> AdmissionVerdict {
        do {
            guard let node = try registry.node(ip: address) else {
                return .refused(reason: "not-registered", message: "no node is registered with address \(address)")
            }
            guard let mac else {
                return .refused(
                    reason: "mac-mismatch",
                    message:
                        "the neighbour table has no MAC for \(address) (node \(node.name)): it cannot be recognised")
            }
            guard node.macs.contains(mac) else {
                return .refused(
                    reason: "mac-mismatch",
                    message:
                        "\(address) is registered to node \(node.name), but it speaks from MAC \(mac), not one of the node's"
                )
            }
            guard try registry.tokenMatches(node.name, token: token) else {
                return .refused(
                    reason: "token",
                    message:
                        "node \(node.name) (\(address)) presented \(token == nil ? "no" : "a wrong") enrollment token")
            }
            return .admitted(node: node.name)
        } catch {
            return .refused(reason: "not-registered", message: "the node registry cannot be read: \(error.message)")
        }
    }
}
