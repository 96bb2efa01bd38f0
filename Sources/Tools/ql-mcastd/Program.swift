/// `ql-mcastd`'s entry: called by its own executable (`Sources/Programs/ql-mcastd`) and by the head
/// node's one program for all its tools (`qlustar-tools`, docs/PACKAGING.md).
public enum Program {
    public static func main() async {
        await QLMcastd.main()
    }
}
