import Foundation
import Platform

/// The changelogs an image carries in `/usr/share/doc/qlustar-image` (boot reference,
/// "Changelogs"), all gzip (zlib), readable by `zcat`:
///
/// - `core.changelog.gz`: the core module's changelog.
/// - `<module>.packages.version.gz`: the packages the module is made of, "name version" lines.
/// - `<module>.packages.changelog.gz`: per version step, packages added, removed and upgraded.
/// - `<module>.contents.changelog-<from>_<to>.gz`: per version step, the files added, removed or
///   changed.
enum Changelogs {
    /// One version step of a module, as known from the build state.
    struct Step {
        var from: ModuleManifest
        var to: ModuleManifest
        var contents: [String]
    }

    static func write(
        into doc: String, module: ImageModule, steps: [Step]
    ) throws(QlustarError) {
        let m = module.manifest
        if m.name == "core" {
            try gzip(
                doc + "/core.changelog.gz", m.changelog ?? "core \(m.version): no changelog in the module manifest\n")
        }
        let packages = m.packages.sorted { $0.name < $1.name }.map { "\($0.name) \($0.version)\n" }.joined()
        try gzip(doc + "/\(m.name).packages.version.gz", packages)
        var history = ""
        for step in steps.reversed() {
            history += "\(m.name) \(step.from.version) -> \(step.to.version)\n"
            let lines = packageChanges(from: step.from.packages, to: step.to.packages)
            history += lines.isEmpty ? "  no package changes\n" : lines.map { "  \($0)\n" }.joined()
            history += "\n"
            let contents = step.contents.isEmpty ? "no file changes\n" : step.contents.map { $0 + "\n" }.joined()
            try gzip(
                doc + "/\(m.name).contents.changelog-\(step.from.version)_\(step.to.version).gz",
                "\(m.name) \(step.from.version) -> \(step.to.version)\n" + contents)
        }
        if history.isEmpty { history = "\(m.name) \(m.version): first version, \(m.packages.count) packages\n" }
        try gzip(doc + "/\(m.name).packages.changelog.gz", history)
    }

    /// "added NAME VERSION", "removed NAME VERSION", "upgraded NAME OLD -> NEW" (or downgraded).
    static func packageChanges(from old: [ModuleManifest.Package], to new: [ModuleManifest.Package]) -> [String] {
        let before = Dictionary(old.map { ($0.name, $0.version) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.map { ($0.name, $0.version) }, uniquingKeysWith: { a, _ in a })
        var out: [String] = []
        for name in Set(before.keys).union(after.keys).sorted() {
            switch (before[name], after[name]) {
            case (nil, .some(let v)): out.append("added \(name) \(v)")
            case (.some(let v), nil): out.append("removed \(name) \(v)")
            case (.some(let a), .some(let b)) where a != b:
                out.append("\(ModuleVersion(b) > ModuleVersion(a) ? "upgraded" : "downgraded") \(name) \(a) -> \(b)")
            default: break
            }
        }
        return out
    }

    static func gzip(_ path: String, _ text: String) throws(QlustarError) {
        let g = try GzipWriter(path: path, level: 9)
        try g.write(text)
        try g.finish()
    }
}
