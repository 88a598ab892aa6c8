import PeonAudit
package import PeonInterface

// `fs`: decided on `fs:` + the guest's path parsed once into a ``GuestPath`` (relative paths start at
// the working directory). The capability walks that same value; every symbolic link it meets leads to
// a new ``GuestPath`` that goes through the pipeline as a nested, audited decision.
extension Mediator {
    /// `fs.read`.
    package func read(path: String) throws(HostError) -> [UInt8] {
        try fileCall("fs.read", path, action: "fs.read", sideEffect: false, details: [:]) { (path, ticket, check) throws(HostError) in
            let file = try fileSystem.readLabelled(path, authorize: check)
            var outcome = payloadDetails(file.bytes, prefix: "result")
            if !file.labels.isEmpty {
                // Labels recorded on the file (by an earlier labelled run) join the run like a grant's.
                ticket.flow.bring(file.labels, seq: ticket.decisionSeq)
                outcome["file_labels"] = file.labels.joined(separator: ",")
            }
            return (file.bytes, outcome)
        }
    }

    /// `fs.write`.
    package func write(path: String, data: [UInt8]) throws(HostError) {
        try fileCall("fs.write", path, action: "fs.write", sideEffect: true,
                     details: payloadDetails(data, prefix: "payload"), outgoing: [("data", data)]) { (path, ticket, check) throws(HostError) in
            try fileSystem.write(path, data: data, labels: heldLabels(ticket.flow).keys.sorted(), authorize: check)
            return ((), [:])
        }
    }

    /// `fs.append`.
    package func append(path: String, data: [UInt8]) throws(HostError) {
        try fileCall("fs.append", path, action: "fs.append", sideEffect: true,
                     details: payloadDetails(data, prefix: "payload"), outgoing: [("data", data)]) { (path, ticket, check) throws(HostError) in
            try fileSystem.append(path, data: data, labels: heldLabels(ticket.flow).keys.sorted(), authorize: check)
            return ((), [:])
        }
    }

    /// `fs.read-dir` (policy action `fs.list`).
    package func readDirectory(path: String) throws(HostError) -> [String] {
        try fileCall("fs.read-dir", path, action: "fs.list", sideEffect: false, details: [:]) { (path, ticket, check) throws(HostError) in
            let folder = try fileSystem.readDirectoryLabelled(path, authorize: check)
            var outcome = ["entries": String(folder.names.count)]
            if !folder.labels.isEmpty {
                // A labelled run created or removed names here: the listing carries its labels.
                ticket.flow.bring(folder.labels, seq: ticket.decisionSeq)
                outcome["folder_labels"] = folder.labels.joined(separator: ",")
            }
            return (folder.names, outcome)
        }
    }

    /// `fs.remove`.
    package func remove(path: String) throws(HostError) {
        try fileCall("fs.remove", path, action: "fs.remove", sideEffect: true, details: [:], outgoing: []) { (path, ticket, check) throws(HostError) in
            // A name that could be removed existed: a removal that succeeds says so as a read would (a labelled run
            // may have created `carol-130000` to be found). The labels of the entry and of its folder, read before
            // it goes, join the run as a failed removal's do.
            let found = try FileSystemCapability.labelsWhereTheWalkStopped(path, linkItself: true)
            try fileSystem.remove(path, labels: heldLabels(ticket.flow).keys.sorted(), authorize: check)
            guard !found.isEmpty else { return ((), [:]) }
            ticket.flow.bring(found, seq: ticket.decisionSeq)
            return ((), ["file_labels": found.joined(separator: ",")])
        }
    }

    /// Parses the path once and runs the call through the pipeline; `body` gets the parsed path and the
    /// check for link targets.
    private func fileCall<T>(
        _ call: String, _ text: String, action: String, sideEffect: Bool, details: [String: String],
        outgoing: [(part: String, bytes: [UInt8])]? = nil, _ body: (GuestPath, Ticket, (GuestPath) -> Bool) throws(HostError) -> (T, [String: String])
    ) throws(HostError) -> T {
        let path = try parse(call, kind: "fs") { () throws(HostError) in
            try GuestPath(parsing: text, relativeTo: workingDirectory)
        }
        try begin(call, .file(path))
        var request = CallRequest(call: call, resource: .file(path), action: action, sideEffect: sideEffect, details: details)
        // A sink's path is data too (a file name can spell a secret): it is checked with the contents.
        if let outgoing { request.outgoing = [("path", Array(path.description.utf8))] + outgoing }
        return try mediate(request) { (ticket) throws(HostError) in
            let check = nestedCheck(ticket)
            do throws(HostError) {
                return try body(path, ticket) { target in check(.file(target), action) }
            } catch {
                // A failure tells the guest about the names where the walk stopped (`not-found` says a
                // labelled run removed a name or never created it, `not a directory` that it created a file,
                // a size limit how much it wrote): the labels there join the run as a read's would.
                let labels = try FileSystemCapability.labelsWhereTheWalkStopped(path)
                if !labels.isEmpty { ticket.flow.bring(labels, seq: ticket.decisionSeq) }
                // A link's target refused for the labels the write would send: say that, not "not covered".
                if error.code == .denied, let refusal = ticket.flow.nestedFlowRefusal { throw refusal }
                throw error
            }
        }
    }
}
