import QlumanTool

QlumanTool.Program.main()
