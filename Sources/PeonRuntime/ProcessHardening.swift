import CPeonSupport

/// What a peon-wasm process does to itself before anything else, so that the programs it runs cannot reach
/// into it.
package enum ProcessHardening {
    /// Marks this process not dumpable (Linux `PR_SET_DUMPABLE` 0). A program an `exec` grant runs has the
    /// user's rights, so it could otherwise read a supervisor's, worker's or MCP server's memory, environment and
    /// descriptors through `/proc/PID/mem` or `ptrace` — injected secrets, the guest's data, the signing key
    /// once loaded. A crash then leaves no core file holding them either. `execve` resets the flag, so every
    /// peon-wasm process calls this at its start; the programs it runs are unaffected.
    ///
    /// Returns whether the kernel accepted it (`false` where there is no `prctl`).
    @discardableResult
    package static func forbidInspection() -> Bool {
        peon_forbid_inspection() == 0
    }
}
