import QlustarImageEditTool

QlustarImageEditTool.Program.main()
