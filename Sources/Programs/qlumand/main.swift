import QlumandTool

await QlumandTool.Program.main()
