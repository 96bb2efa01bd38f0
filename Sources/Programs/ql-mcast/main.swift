import QLMcastTool

QLMcastTool.Program.main()
