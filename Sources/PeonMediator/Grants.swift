package import PeonPolicy

/// What one module may do, as written in `policies/NAME.toml` and checked by ``GrantsParser``.
///
/// Grants are the user-facing form; ``GrantsCompiler`` turns them into policy lines for the built-in
/// Casbin model, so the policy engine decides every call. The attributes the engine cannot express
/// (rate, approval, response caps, injected headers, timeouts, the exec environment) stay here and
/// the mediator applies them to calls the engine allowed.
package struct Grants: Sendable, Hashable {
    /// The subject name for the policy engine and the audit log.
    package var module: String
    /// An optional pin: lowercase hex SHA-256 of the only module binary these grants apply to.
    package var sha256: String?
    /// Whole-run limits.
    package var limits: GrantLimits
    /// The only environment variables the module sees through WASI, sorted by name.
    package var environment: [String: String]
    /// `[[fs]]` grants, in file order.
    package var fileSystem: [FileSystemGrant]
    /// `[[http]]` grants, in file order.
    package var http: [HTTPGrant]
    /// `[[db]]` grants, in file order.
    package var database: [DatabaseGrant]
    /// `[[exec]]` grants, in file order.
    package var exec: [ExecGrant]
    /// `[egress]`: patterns refused in any data the module sends out (a body, a header, a URL, a written
    /// file, an exec argument or stdin, SQL and its parameters). The values of injected `env:` headers
    /// are always refused too, whatever this list says.
    package var egress: [ContentPattern] = []
    /// The `[tool]` table: how `peon-wasm mcp` serves the module as an MCP tool; `nil` when absent.
    package var tool: ToolGrant? = nil

    /// Grants that allow nothing: the default for a module run without `--grants`.
    package static func none(module: String) -> Grants {
        Grants(module: module, sha256: nil, limits: GrantLimits(), environment: [:],
               fileSystem: [], http: [], database: [], exec: [])
    }

    /// Creates grants from their parts.
    package init(
        module: String, sha256: String? = nil, limits: GrantLimits = GrantLimits(),
        environment: [String: String] = [:], fileSystem: [FileSystemGrant] = [], http: [HTTPGrant] = [],
        database: [DatabaseGrant] = [], exec: [ExecGrant] = []
    ) {
        self.module = module
        self.sha256 = sha256
        self.limits = limits
        self.environment = environment
        self.fileSystem = fileSystem
        self.http = http
        self.database = database
        self.exec = exec
    }
}

/// The `[tool]` table of a grants file: the module served as an MCP tool by `peon-wasm mcp`. The tool's
/// name is the grants' `module`. It changes nothing about what the module may do: the grants decide that.
package struct ToolGrant: Sendable, Hashable {
    /// The module binary, absolute (a relative `wasm` was resolved against the grants file's folder).
    package var wasm: String
    /// What the tool does, for the model that decides whether to call it.
    package var description: String
    /// The declared input JSON Schema as compact JSON text (an object whose `type` is `object`), or `nil`
    /// for the default `{"input": string}`, whose string is the module's `run` input. With a declared
    /// schema the module's input is the call's whole arguments object as JSON text.
    package var inputSchema: String?
    /// Where the `[tool]` table was written.
    package var source: GrantSource

    /// Creates a tool table.
    package init(wasm: String, description: String, inputSchema: String?, source: GrantSource) {
        self.wasm = wasm
        self.description = description
        self.inputSchema = inputSchema
        self.source = source
    }

    /// The default input schema: one required string property `input`, nothing else.
    package static let defaultInputSchema =
        #"{"type":"object","properties":{"input":{"type":"string","description":"The text given to the module's run export."}},"required":["input"],"additionalProperties":false}"#
}

/// Where a grant was written, for messages and the audit trail: `file:line`.
package struct GrantSource: Sendable, Hashable, CustomStringConvertible {
    /// The grants file path as given.
    package var file: String
    /// The 1-based line of the grant's `[[...]]` header.
    package var line: Int

    /// Creates a location.
    package init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    /// `file:line`.
    package var description: String { "\(file):\(line)" }
}

/// The `[limits]` table. `nil` means the runtime's default.
package struct GrantLimits: Sendable, Hashable {
    /// Linear memory cap.
    package var memory: ByteSize?
    /// Wall clock for the whole run.
    package var timeout: Duration?
    /// Host calls per run (every `fs`/`http`/`db`/`exec` call counts, allowed or not; `log` does not).
    package var calls: Int?
    /// Instruction budget, for engines that meter fuel.
    package var fuel: Int?

    /// Creates limits; every default is `nil` (the runtime decides).
    package init(memory: ByteSize? = nil, timeout: Duration? = nil, calls: Int? = nil, fuel: Int? = nil) {
        self.memory = memory
        self.timeout = timeout
        self.calls = calls
        self.fuel = fuel
    }
}

/// What the engine cannot decide: constraints that apply to every call a grant allows.
package struct GrantConditions: Sendable, Hashable {
    /// Token-bucket rate per module and grant; `nil` for none.
    package var rate: Rate?
    /// When a person or the `--approver` command must approve a call.
    package var approval: Approval

    /// Creates conditions; default no rate and no approval.
    package init(rate: Rate? = nil, approval: Approval = .never) {
        self.rate = rate
        self.approval = approval
    }
}

/// When a grant's calls need approval (`approval = true | false | "first-use"` in grants).
package enum Approval: String, Sendable, Hashable {
    /// No approval (`approval = false`, the default).
    case never
    /// Every call (`approval = true`).
    case everyCall
    /// Only a call whose (module, action, resource) was never allowed before on this audit log
    /// (`approval = "first-use"`): the human is asked once, the first time an agent reaches something new.
    case firstUse
}

/// An `fs` operation a grant can allow; the policy action is `fs.` + the raw value.
package enum FileSystemAccess: String, Sendable, Hashable, CaseIterable {
    case read, write, append, list, remove
}

/// An `[[fs]]` grant: absolute path globs and the operations allowed on them.
package struct FileSystemGrant: Sendable, Hashable {
    /// Absolute, lexically normalized globs (relative ones were resolved against the grants file's folder).
    package var paths: [String]
    /// Allowed operations, never empty.
    package var access: [FileSystemAccess]
    /// Information-flow labels data read under this grant carries (e.g. `hr`); a run that reads
    /// through it holds them until it ends. Empty: the data is unlabelled.
    package var labels: [String] = []
    /// Labels data sent out through this grant may carry. A run holding a label not listed here is
    /// refused this grant's sink calls. Empty: only a run holding no labels may use it.
    package var clearance: [String] = []
    /// Rate and approval.
    package var conditions: GrantConditions
    /// Where the grant was written.
    package var source: GrantSource
}

/// A header injected by the host into requests a grant allows.
package struct InjectedHeader: Sendable, Hashable {
    /// Where the value comes from.
    package enum Value: Sendable, Hashable {
        /// The named host environment variable, read at call time (`env:NAME`).
        case environment(String)
        /// A fixed value written in the grants file.
        case literal(String)
    }

    /// The header name.
    package var name: String
    /// Its value's source. The value itself never reaches the guest or the audit log.
    package var value: Value
}

/// An `[[http]]` grant.
package struct HTTPGrant: Sendable, Hashable {
    /// URL globs with lowercase scheme and host, e.g. `https://api.example.com/v1/**`.
    package var urls: [String]
    /// Upper-case methods, never empty.
    package var methods: [String]
    /// Response body cap; `nil` for the capability's default.
    package var maxResponse: ByteSize?
    /// Per-request time cap; `nil` for the capability's default (always bounded by the run's deadline).
    package var timeout: Duration?
    /// Headers the host adds (secrets), overriding any the guest set with the same name.
    package var headers: [InjectedHeader]
    /// Information-flow labels the responses carry (every method's response is data read).
    package var labels: [String] = []
    /// Labels a request through this grant may carry (every method is a sink: a URL carries data too).
    package var clearance: [String] = []
    /// Rate and approval.
    package var conditions: GrantConditions
    /// Where the grant was written.
    package var source: GrantSource
}


/// A `[[db]]` grant.
package struct DatabaseGrant: Sendable, Hashable {
    /// The database name bound with `--db NAME=PATH`.
    package var database: String
    /// Table names or globs (`*` for every table).
    package var tables: [String]
    /// Allowed operations, never empty.
    /// (Each is a ``DatabaseOperation``; the policy action is `db.` + its raw value.)
    package var access: [DatabaseOperation]
    /// Information-flow labels rows read (`read`) under this grant carry.
    package var labels: [String] = []
    /// Labels a run may hold when it writes (`insert`, `update`, `delete`, `schema`) under this grant.
    package var clearance: [String] = []
    /// Rate and approval.
    package var conditions: GrantConditions
    /// Where the grant was written.
    package var source: GrantSource
}

/// An `[[exec]]` grant.
package struct ExecGrant: Sendable, Hashable {
    /// The absolute program path.
    package var program: String
    /// One pattern per argument (`*` any characters, `?` one); the counts must match.
    package var arguments: [String]
    /// The program's whole environment.
    package var environment: [String: String]
    /// Per-run time cap; `nil` for the capability's default.
    package var timeout: Duration?
    /// Cap on captured stdout and stderr each; `nil` for the capability's default.
    package var maxOutput: ByteSize?
    /// Labels a run may hold when it runs this program (its arguments and stdin carry data out).
    package var clearance: [String] = []
    /// Labels the program's output carries: a program reads what the host lets it read (a `cat` of HR
    /// files), so what it prints can be as sensitive as a labelled file; the run acquires these when the
    /// call succeeds.
    package var labels: [String] = []
    /// Rate and approval.
    package var conditions: GrantConditions
    /// Where the grant was written.
    package var source: GrantSource
}
