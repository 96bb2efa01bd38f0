import Platform

/// The unionFS chroot config class: the chroot set up instead of the image's.
public struct ChrootConfig: Codable, Sendable, Equatable {
    public var chroot: String

    public func validate() throws(QlustarError) { _ = try FieldCheck.name(chroot, "chroot name") }
}

extension ConfigClass {
    public static let chroot = ConfigClass(declaring: "chroot")
}

extension ChrootConfig: NodeConfigClass {
    public static var kind: ConfigClass { .chroot }
    public static var optionsKey: String? { "chroot" }
    public static var example: String { #"{"chroot":"devel"}"# }

    public static func render(
        _ configs: [NodeOptions.Named<Self>], into plan: inout FilePlan, _ context: inout RenderContext
    ) {
        guard let chroot = configs.last?.config else { return }
        context.optionsFile("chroot", of: kind, into: &plan) { $0.set("QLUMAN_CHROOT", chroot.chroot) }
    }
}
