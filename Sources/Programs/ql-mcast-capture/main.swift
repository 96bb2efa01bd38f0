import QLMcastCaptureTool

QLMcastCaptureTool.Program.main()
