// SDK self-test (Embedded Swift): calls every function of modules/sdk/swift/Peon.swift once and
// checks what comes back. Input: a scratch folder the grants allow. Run by modules/check.sh
// under pyhost with grants it writes itself.
import CPeon

@_cdecl("peon_run")
func peonRun(_ input: UnsafePointer<CChar>, _ length: Int, _ out: UnsafeMutablePointer<peon_buf>) -> Bool {
    Peon.serve(input, length, out) { dir throws(PeonError) in try selftest(dir) }
}

func check(_ ok: Bool, _ what: String) throws(PeonError) {
    if !ok { throw PeonError(code: .io, message: "selftest failed: " + what) }
}

func expectCode(_ code: PeonError.Code, _ what: String, _ body: () throws(PeonError) -> Void) throws(PeonError) {
    do {
        try body()
    } catch {
        try check(error.code == code && !error.message.isEmpty, what)
        return
    }
    try check(false, what + " (it succeeded)")
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard haystack.count >= needle.count else { return false }
    for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
        return true
    }
    return false
}

func selftest(_ dir: String) throws(PeonError) -> String {
    let file = dir + "/a.txt"
    try Peon.FS.write(file, Array("hello".utf8))
    try Peon.FS.append(file, Array(" world".utf8))
    try check(try Peon.FS.read(file) == Array("hello world".utf8), "fs read after write+append")
    try check(try Peon.FS.readDir(dir).contains("a.txt"), "fs read-dir lists a.txt")
    try Peon.FS.remove(file)
    try expectCode(.notFound, "fs read after remove") { () throws(PeonError) in _ = try Peon.FS.read(file) }
    try expectCode(.denied, "fs read outside the grant") { () throws(PeonError) in _ = try Peon.FS.read("/etc/shadow") }

    let values: [Peon.DB.Value] = [.integer(-5), .real(2.5), .text("héllo"), .blob([0, 1, 255]), .null]
    try check(try Peon.DB.execute("t", "INSERT INTO t (i, r, s, b, n) VALUES (?1, ?2, ?3, ?4, ?5)", values) == 1, "db execute")
    let rows = try Peon.DB.query("t", "SELECT i, r, s, b, n FROM t WHERE i = ?1", [.integer(-5)])
    try check(rows.columns == ["i", "r", "s", "b", "n"], "db columns")
    try check(rows.rows.count == 1 && rows.rows[0] == values, "db values round-trip")
    try expectCode(.denied, "db schema change") { () throws(PeonError) in _ = try Peon.DB.execute("t", "DROP TABLE t") }

    let response = try Peon.HTTP.send(method: "POST", url: "https://selftest.example/echo",
                                      headers: [("x-one", "1"), ("content-type", "text/plain")], body: Array("ping".utf8))
    try check(response.status == 200, "http status")
    try check(response.headers.contains { $0.name == "content-type" && $0.value == "application/json" }, "http header")
    try check(contains(response.body, Array("\"received\": 4".utf8)), "http body")

    let output = try Peon.Exec.run("/usr/bin/wc", ["-c"], stdin: Array("abc".utf8))
    try check(output.code == 0 && output.stdout.first == UInt8(ascii: "3") && output.stderr.isEmpty, "exec wc -c")
    try expectCode(.denied, "exec of a shell") { () throws(PeonError) in _ = try Peon.Exec.run("/bin/sh", ["-c", "true"]) }
    Peon.log(.debug, "selftest done")
    return "swift sdk selftest ok"
}
