import XCTest

@testable import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// A test case with a fresh directory of its own (`dir`), removed after each test.
class ScratchTestCase: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "\(type(of: self))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileSystem.makeDirectories(dir)
    }

    override func tearDownWithError() throws { try FileSystem.removeTree(dir) }
}
