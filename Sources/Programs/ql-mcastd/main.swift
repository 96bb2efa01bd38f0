import QLMcastdTool

await QLMcastdTool.Program.main()
