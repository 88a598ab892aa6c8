import Foundation
import PeonTestSupport
import Testing

/// `peon-wasm mcp` driven by the real Python MCP client: each scenario of
/// `Tests/PeonMCPTests/MCP/mcp_client_test.py` starts a server on fresh grants and checks what the client
/// sees and what the audit log holds (the script prints the reason and the server's stderr on failure).
@Suite("peon-wasm mcp with the Python MCP client",
       .enabled(if: pythonMCPAvailable, "SKIPPED: python3 cannot import `mcp` (pip install mcp==2.3.0), so the MCP client tests did not run"))
struct McpServerTests {
    @Test("MCP client scenario", arguments: [
        "basic",       // initialize, tools/list, a granted call, a denied call (isError, deny entry, grant line)
        "concurrent",  // 50 concurrent calls across three tools, then audit verify and exact entry counts
        "cancel",      // notifications/cancelled stops the instance; run.end says cancelled
        "reload",      // a grants edit revokes a read mid-session, tools/list_changed; a broken edit keeps the old grants
        "failures",    // a trapping and a timing-out module are errors; the server stays healthy
        "raw",         // malformed JSON-RPC and an oversized message get errors; the server stays healthy
        "elicit",      // approval = true asks the client (elicitation): accept allows, decline denies, both audited
                       // with approver mcp-elicitation:CLIENT; a client without elicitation falls back to --approver
        "sigterm",     // SIGTERM: running calls stop (a spinning one is cut off), each has one run.end, the log verifies, exit 143
        "sigint",      // the same for SIGINT, exit 130
        "sigquit",     // the same for SIGQUIT (Ctrl-\), exit 131, and no crash backtrace
        "labels",      // a session that got HR data from one tool holds `hr` in its next calls: an uncleared sink of
                       // another tool is refused; a new session starts clean; run.start/run.end record it
        "elicit-labels", // an approval request shows the client what the run read: a call the client makes while it
                         // waits holds the run's labels
        "waiting",     // one slot, one waiting call: the next is refused at once (JSON-RPC error naming --max-waiting);
                       // a waiting call its client cancels never starts; ids 7 and "7" differ in mcp_request_json
        "http-waiting", // the same over HTTP: 503 under the call's own id; a waiting call whose client closed the
                        // connection never starts and frees its place
        "request-ids", // 7 and "7" in flight at once in one session: over HTTP the second (and a reused 7) is refused at
                       // once with -32600 under its own id, 7 gets its own answer, then "7" is free; over stdio both
                       // run and each gets its own answer
        "backpressure", // stdio: a client that never reads its answers stops being read (its pipe fills: EAGAIN)
                        // instead of growing the server; once it reads, every request is answered, an approval asked
                        // meanwhile works, and closing stdin ends the server with a log that verifies; SIGTERM
                        // stops a server waiting for such a client (143, run.end, checkpoint)
        "http",        // --http: the streamable HTTP client (calls, denial, elicitation, concurrency), Host/Origin
                       // checks, 413/404/400 answers, SIGTERM, request ids and client names in the log
    ])
    func scenario(_ name: String) async throws {
        try await runMCPClientScenarioOffPool(name)
    }
}
