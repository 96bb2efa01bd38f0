import ArgumentParser
import Foundation
import ImageTools
import Logging
import Platform

struct QlustarImageEdit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qlustar-image-edit",
        abstract: "Add or edit files of node images (kept across rebuilds), or edit a built initrd/squashfs in place.",
        discussion: HelpText.paragraphs(
            """
            Static files, kept across every rebuild (edited with $VISUAL, $EDITOR, sensible-editor or vi):
              qlustar-image-edit -e /some/path/filename
                  all images: /etc/qlustar/images/common/copy/…
              qlustar-image-edit -e img /some/path/filename
                  image img:  /etc/qlustar/images/img/copy/…

            Remove such a file to undo it. Then `qlustar-image update` rebuilds the images.

            Root FS Customization config CUSTOM (sent to nodes at boot, /var/lib/qlustar/root-fs/CUSTOM):
              qlustar-image-edit -r -e custom /some/path/filename
              qlustar-image-edit -r -d custom /some/path/filename

            Temporary changes to a built image (replaced by the next rebuild from modules; reset
            with qlustar-image-reconfigure img):
              qlustar-image-edit -i img      a shell in the unpacked initrd
              qlustar-image-edit -s img      a shell in the unpacked squashfs
            'exit' regenerates it, 'exit 1' throws the changes away. --command CMD runs CMD instead
            of the shell (its exit status decides), for scripts.

            Exit status: 0 done; 1 an error, or the command given to -i/-s failed (the image part stays
            as it was); 2 the file, image or configuration does not exist; 64 a mistake in the command line.
            """)
    )

    @Flag(name: .customShort("e"), help: "Create or edit a file.") var edit = false
    @Flag(name: .customShort("d"), help: "With -r: delete a file.") var delete = false
    @Flag(name: .customShort("r"), help: "Work on a Root FS Customization config instead of images.") var rootFS = false
    @Option(name: .customShort("i"), help: "Edit the initrd of this image in a shell.") var initrd: String?
    @Option(name: .customShort("s"), help: "Edit the squashfs of this image in a shell.") var squashfs: String?
    @Option(help: "Instead of the editor (-e) or the shell (-i/-s), run this command.") var command: String?
    @Option(help: "Root prefix for every path (default: $QLUSTAR_ROOT or /).") var root: String?
    @Argument(help: "[IMAGE | CUSTOM] PATH") var arguments: [String] = []

    mutating func validate() throws {
        let modes = [edit || delete, initrd != nil, squashfs != nil].filter { $0 }.count
        guard modes == 1 else { throw ValidationError("give exactly one of -e, -r -e/-d, -i IMG, -s IMG") }
        if delete && !rootFS { throw ValidationError("-d deletes a Root FS Customization file: use -r -d CUSTOM PATH") }
        if edit && delete { throw ValidationError("-e and -d exclude each other") }
        if rootFS && !(edit || delete) { throw ValidationError("-r needs -e or -d") }
        if edit || delete {
            let expected = rootFS ? [2] : [1, 2]
            guard expected.contains(arguments.count) else {
                throw ValidationError(rootFS ? "expected CUSTOM PATH" : "expected [IMAGE] PATH")
            }
        } else if !arguments.isEmpty {
            throw ValidationError("-i and -s take only the image name")
        }
    }

    func run() throws {
        let rootPath = Root(root)
        let log = Logger(root: rootPath, name: "qlustar-image-edit")
        let editor = ImageEditor(root: rootPath, log: log)
        do {
            if let name = initrd ?? squashfs {
                let part: ImageEditor.Part = initrd != nil ? .initrd : .squashfs
                let regenerated = try editor.editBuilt(try ImageName(name), part, command: command)
                if !regenerated { throw ExitCode(1) }
                return
            }
            if rootFS {
                if delete {
                    print(try editor.delete(arguments[1], rootFS: arguments[0]))
                } else {
                    print(try editor.edit(arguments[1], in: .rootFS(arguments[0]), editor: command))
                }
                return
            }
            let area: ImageEditor.Area = arguments.count == 2 ? .image(try ImageName(arguments[0])) : .common
            print(try editor.edit(arguments.last!, in: area, editor: command))
        } catch let error as QlustarError {
            log.error("\(error.message)")
            throw ExitCode(error.code == .notFound ? 2 : 1)
        }
    }
}
