import Foundation
import Platform

/// One version of an image module: a versioned unit of the node OS (docs/IMAGES.md).
///
/// Installed as `<root>/var/lib/qlustar/image-modules/NAME/VERSION/` holding `module.json`
/// (this manifest) and the content, either the directory `tree/` or the archive `tree.tar`.
public struct ModuleManifest: Codable, Sendable, Equatable {
    public struct Package: Codable, Sendable, Equatable, Hashable {
        public var name: String
        public var version: String
        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }
    }

    public var name: String
    public var version: String
    public var packages: [Package]
    /// The module's changelog (Debian style text), newest entry first.
    public var changelog: String?

    public init(name: String, version: String, packages: [Package], changelog: String? = nil) {
        self.name = name
        self.version = version
        self.packages = packages
        self.changelog = changelog
    }
}

/// An installed module version: its manifest, and where its content is.
public struct ImageModule: Sendable {
    public enum Content: Sendable, Equatable {
        case tree(String)
        case tarArchive(String)
    }

    public let manifest: ModuleManifest
    public let directory: String
    public let content: Content
    /// SHA-256 of `module.json` as installed: with name and version, what identifies the input.
    public let manifestDigest: String

    public var name: String { manifest.name }
    public var version: ModuleVersion { ModuleVersion(manifest.version) }
}

/// A module version, compared the way Debian compares versions in the common cases: runs of
/// digits numerically, other runs by byte order, `~` before anything (so `2.0~rc1 < 2.0`).
public struct ModuleVersion: Comparable, Sendable, Hashable, CustomStringConvertible {
    public let text: String
    public init(_ text: String) { self.text = text }
    public var description: String { text }

    public static func < (a: ModuleVersion, b: ModuleVersion) -> Bool {
        compare(Array(a.text.utf8), Array(b.text.utf8)) < 0
    }

    private static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        var i = 0
        var j = 0
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func order(_ c: UInt8?) -> Int {
            guard let c else { return 0 }
            if c == 0x7E { return -1 }  // '~' sorts before the end
            return Int(c) + 256
        }
        while i < a.count || j < b.count {
            // Non-digit run.
            while (i < a.count && !isDigit(a[i])) || (j < b.count && !isDigit(b[j])) {
                let x = i < a.count && !isDigit(a[i]) ? order(a[i]) : 0
                let y = j < b.count && !isDigit(b[j]) ? order(b[j]) : 0
                if x != y { return x < y ? -1 : 1 }
                if i < a.count && !isDigit(a[i]) { i += 1 }
                if j < b.count && !isDigit(b[j]) { j += 1 }
            }
            // Digit run.
            var x = 0
            var y = 0
            while i < a.count, isDigit(a[i]) {
                x = x * 10 + Int(a[i] - 0x30)
                i += 1
            }
            while j < b.count, isDigit(b[j]) {
                y = y * 10 + Int(b[j] - 0x30)
                j += 1
            }
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }
}
