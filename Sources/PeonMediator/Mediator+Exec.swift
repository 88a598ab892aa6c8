import PeonAudit
package import PeonInterface

// `exec`: decided on `exec:` + the program path (which must already be absolute and normal: a program
// has exactly one spelling) and the argument vector (``ArgumentVector``).
extension Mediator {
    /// `exec.run`.
    package func run(program: String, arguments: [String], stdin: [UInt8]) throws(HostError) -> ExecOutput {
        let path = try parse("exec.run", kind: "exec") { () throws(HostError) in try ProgramPath(parsing: program) }
        try begin("exec.run", .program(path))
        var details = payloadDetails(stdin, prefix: "stdin")
        details["args"] = ArgumentVector.encode(arguments)
        if arguments.contains(where: { $0.utf8.contains(0) }) {
            throw try refuseEarly("exec.run", resource: Resource.program(path).description,
                                  HostError(.invalidArgument, "an exec argument contains a NUL byte"))
        }
        var request = CallRequest(call: "exec.run", resource: .program(path), action: "exec.run",
                                  arguments: arguments, sideEffect: true, details: details)
        request.outgoing = arguments.enumerated().map { ("argument \($0.offset + 1)", Array($0.element.utf8)) } + [("stdin", stdin)]
        return try mediate(request) { (ticket) throws(HostError) in
            // Every grant behind the decision bounds the program, as for `http`: the shortest timeout, the smallest
            // output cap, and only the environment entries they all give alike. The first grant's alone were taken, so
            // a second, looser grant written above a careful one lifted its limits.
            let grants = ticket.execGrants
            // A grant without a cap has the default one (which another grant may raise): it counts as that.
            let timeout = grants.map { $0.timeout ?? configuration.caps.execTimeout }.min() ?? configuration.caps.execTimeout
            let maxOutput = grants.map { $0.maxOutput?.bytes ?? configuration.caps.maxOutputBytes }.min() ?? configuration.caps.maxOutputBytes
            let environment = grants.dropFirst().reduce(grants.first?.environment ?? [:]) { shared, grant in
                shared.filter { entry in grant.environment[entry.key].map { $0.utf8.elementsEqual(entry.value.utf8) } ?? false }
            }
            let remaining = configuration.deadline - ContinuousClock.now
            let bounded = min(timeout, max(remaining, .milliseconds(1)))
            let output = try programs.run(
                program: path, arguments: arguments, stdin: stdin, environment: environment,
                timeout: bounded, maxOutputBytes: maxOutput)
            var outcome = payloadDetails(output.stdout, prefix: "stdout")
            outcome.merge(payloadDetails(output.stderr, prefix: "stderr")) { $1 }
            outcome["exit"] = String(output.code)
            return (output, outcome)
        }
    }
}
