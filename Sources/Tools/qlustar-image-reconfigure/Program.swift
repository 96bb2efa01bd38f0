/// `qlustar-image-reconfigure`'s entry: called by its own executable (`Sources/Programs/qlustar-image-reconfigure`) and by the head
/// node's one program for all its tools (`qlustar-tools`, docs/PACKAGING.md).
public enum Program {
    public static func main() {
        QlustarImageReconfigure.main()
    }
}
