import ArgumentParser
import Foundation
import ImageTools
import Logging
import Platform

#if canImport(Glibc)
    import Glibc
#endif

struct QlustarImageReconfigure: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qlustar-image-reconfigure",
        abstract:
            "Set an image's root password, and reset its initrd and squashfs to what its modules and copy files produce.",
        discussion: HelpText.paragraphs(
            """
            By default an image's root password is the head node's (its hash in /etc/shadow). Run
            interactively, this asks for a new one twice (not echoed; empty keeps the current
            setting). The hash is stored as SHA-512 crypt in the image definition. In every case
            the image is rebuilt from its modules, which also undoes qlustar-image-edit -i/-s.

              qlustar-image-reconfigure compute
              mkpasswd -m sha-512 | \\
                  qlustar-image-reconfigure compute --password-hash "$(cat)"
              echo 'secret' | qlustar-image-reconfigure compute --password-stdin

            Exit status: 0 done; 1 an error, named in the message; 64 a mistake in the command line.
            """)
    )

    @Argument(help: "Image name.") var image: String
    @Option(help: "Use this SHA-512 crypt hash ($6$…) as root's password.") var passwordHash: String?
    @Flag(help: "Read the new password from the first line of standard input.") var passwordStdin = false
    @Flag(help: "Go back to the head node's root password.") var headPassword = false
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Option(help: "The ql-mcast-client binary for the initrd (default: the one beside this program, else on $PATH).")
    var client: String?

    mutating func validate() throws {
        guard [passwordHash != nil, passwordStdin, headPassword].filter({ $0 }).count <= 1 else {
            throw ValidationError("give at most one of --password-hash, --password-stdin, --head-password")
        }
        if let h = passwordHash, !PasswordHash.isSHA512(h) {
            throw ValidationError("--password-hash must be a SHA-512 crypt hash ($6$…)")
        }
    }

    func run() throws {
        let rootPath = Root(root)
        let name = try ImageName(image)
        var definition = try ImageDefinition.load(rootPath, name)
        if let passwordHash {
            definition.rootPasswordHash = passwordHash
        } else if passwordStdin {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError("no password on standard input")
            }
            definition.rootPasswordHash = try PasswordHash.sha512(line)
        } else if headPassword {
            definition.rootPasswordHash = nil
        } else if isatty(0) != 0 {
            let first = String(cString: getpass("New root password for image '\(name)' (empty: keep): "))
            if !first.isEmpty {
                let second = String(cString: getpass("Again: "))
                guard first == second else { throw ValidationError("the passwords differ; nothing changed") }
                definition.rootPasswordHash = try PasswordHash.sha512(first)
            }
        }
        try definition.store(rootPath, name)
        let found = CompanionProgram.path("ql-mcast-client") ?? "ql-mcast-client (beside this program or on $PATH)"
        let builder = ImageBuilder(
            root: rootPath, log: Logger(root: rootPath, name: "qlustar-image"), clientBinary: client ?? found)
        let result = try builder.build(name, force: true)
        print(
            "\(name): rebuilt from its modules (sha256 \(result.record.sha256)); root password: \(definition.rootPasswordHash == nil ? "the head node's" : "set")"
        )
    }
}
