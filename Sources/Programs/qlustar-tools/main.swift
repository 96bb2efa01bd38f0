import Platform
import QLMcastCaptureTool
import QLMcastTool
import QLMcastdTool
import QlumanTool
import QlumandTool
import QlustarImageEditTool
import QlustarImageReconfigureTool
import QlustarImageTool

#if canImport(Glibc)
    import Glibc
#endif

// The head node's tools as one program, called by the name of the link it was started through
// (/usr/sbin/qluman → /usr/lib/qlustar/qlustar-tools, …): the tools share the Swift runtime,
// Foundation and ICU, which each would otherwise carry in full (docs/PACKAGING.md).
let called = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
switch called {
case "ql-mcast": QLMcastTool.Program.main()
case "ql-mcastd": await QLMcastdTool.Program.main()
case "qlustar-image": QlustarImageTool.Program.main()
case "qlustar-image-edit": QlustarImageEditTool.Program.main()
case "qlustar-image-reconfigure": QlustarImageReconfigureTool.Program.main()
case "qluman": QlumanTool.Program.main()
case "qlumand": await QlumandTool.Program.main()
case "ql-mcast-capture": QLMcastCaptureTool.Program.main()
default:
    let message = """
        qlustar-tools: called as '\(called)'; run it through one of its links: ql-mcast, ql-mcastd, qlustar-image, qlustar-image-edit, qlustar-image-reconfigure, qluman, qlumand, ql-mcast-capture

        """
    Array(message.utf8).withUnsafeBytes { _ = try? Posix.writeAll(2, $0) }
    exit(64)
}
