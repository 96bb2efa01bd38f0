import QlustarImageTool

QlustarImageTool.Program.main()
