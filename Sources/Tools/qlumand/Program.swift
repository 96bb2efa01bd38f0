/// `qlumand`'s entry: called by its own executable (`Sources/Programs/qlumand`) and by the head
/// node's one program for all its tools (`qlustar-tools`, docs/PACKAGING.md).
public enum Program {
    public static func main() async {
        await Qlumand.main()
    }
}
