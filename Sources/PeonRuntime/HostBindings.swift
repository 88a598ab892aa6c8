package import PeonABI
package import PeonEngine
package import PeonInterface
import CPeonSupport

/// The `peon:host@0.1.0` world (`wit/peon.wit`) bound to core modules: the host functions a guest's
/// `peon:host/...` imports resolve to, the exact core signatures the canonical ABI gives them, the
/// load-time check of a module's imports and exports, and the call of its `run` export.
///
/// Each host function lifts the guest's arguments (every pointer and length checked, sizes capped by
/// ``CanonicalLimits``), calls the ``HostInterface`` — in production the mediator, so policy,
/// approval and audit decide before anything acts — and lowers the `result<T, error>` into the
/// return area the guest passed. A refusal from the host is an `error` value the guest sees; a
/// malformed pointer or value from the guest ends the call with a ``GuestMemoryError`` naming the
/// import.
///
/// ```swift
/// try PeonHostBindings.checkModule(imports: module.imports, exports: module.exports)
/// let instance = try module.instantiate(PeonHostBindings.hostFunctions(for: mediator), limits: limits)
/// switch try PeonHostBindings.callRun(instance, input: "hello") {
/// case .success(let answer): print(answer)
/// case .failure(let error): printError(error.message)
/// }
/// ```
package enum PeonHostBindings {
    /// The version of the `peon:host` package these bindings implement.
    package static let version = "0.1.0"

    /// The import modules of the interfaces that have functions, e.g. `peon:host/fs@0.1.0`.
    package static let interfaceModules: Set<String> = Set(bindings.map(\.module))

    /// Whether `module` claims to be part of `peon:host` (any interface, any version), so that an
    /// import from it that ``expectedSignature(module:name:)`` does not know is an error rather than
    /// something another provider may satisfy.
    package static func isHostInterfaceModule(_ module: String) -> Bool {
        module.hasPrefix("peon:host/") || module.hasPrefix("peon:host@") || module == "peon:host"
    }

    /// The component-level type of the function a guest imports as `module`/`name`, or `nil` when
    /// there is no such function.
    package static func function(module: String, name: String) -> CanonicalFunction? {
        bindingsByImport[ImportKey(module: module, name: name)]?.function
    }

    /// The exact core signature a guest must import `module`/`name` with (the canonical ABI's lowering
    /// of the WIT function), or `nil` when there is no such function. E.g. `fs.read` is
    /// `(i32, i32, i32) -> ()`: the path's pointer and length, then the return area.
    package static func expectedSignature(module: String, name: String) -> FunctionSignature? {
        function(module: module, name: name)?.importSignature
    }

    /// One host function per WIT function, each calling `host`. Arguments are lifted under `limits`;
    /// a guest passing more than they allow gets `error(limit-exceeded)` and `host` is not called.
    /// The functions keep no per-instance state: one array may serve many instances, on many threads.
    package static func hostFunctions(for host: any HostInterface, limits: CanonicalLimits = CanonicalLimits()) -> [HostFunction] {
        bindings.map { binding in
            HostFunction(module: binding.module, name: binding.name, signature: binding.function.importSignature) { guest, arguments in
                try binding.call(host, guest: guest, arguments: arguments, limits: limits)
            }
        }
    }

    /// The canonical ABI's `run: func(input: string) -> result<string, string>`.
    package static let runFunction = CanonicalFunction([.string], result: .result(ok: .string, error: .string))
    /// The core export that implements `run`.
    package static let runExport = "run"
    /// The core export the host calls after reading `run`'s result, if the guest has it.
    package static let runPostReturnExport = "cabi_post_run"

    /// Calls the guest's `run` export with `input` and returns its answer: the input is copied into
    /// guest memory through `cabi_realloc`, `run(ptr, len) -> i32` is called, the
    /// `result<string, string>` is lifted from the returned pointer (checked for alignment and bounds,
    /// the strings for UTF-8 and `limits`), then `cabi_post_run` is called if exported.
    ///
    /// Throws what the guest's run throws (traps, errors from host functions), ``GuestMemoryError``
    /// for a malformed result, ``CanonicalLimitExceeded`` for one larger than `limits`.
    package static func callRun(
        _ instance: any ModuleInstance, input: String, limits: CanonicalLimits = CanonicalLimits()
    ) throws -> Result<String, GuestRunError> {
        // The input's `cabi_realloc` and `cabi_post_run` run with the imports closed, as the result's lowering does.
        let value = try runFunction.callExport(runExport, arguments: [.string(input)], in: instance, limits: limits,
                                               importsClosed: { body in try LeaveGuard.closed(body) })
        guard let (index, payload) = try value?.asVariant(), let payload else {
            throw CanonicalValueMismatch("run returned no result")
        }
        let text = try payload.asString()
        return index == 0 ? .success(text) : .failure(GuestRunError(message: text))
    }

    /// Every `peon:host` function as the import a module declares for it (module, name, core
    /// signature), e.g. for classifying a module's imports without a host at hand.
    package static let importDescriptors: [ImportDescriptor] = bindings.map {
        ImportDescriptor(module: $0.module, name: $0.name, kind: .function($0.function.importSignature))
    }
}

/// The error string a module's `run` export returned (the `error` case of its `result<string, string>`):
/// the module's own report that it failed, not a fault of the host or a trap.
package struct GuestRunError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The module's message, exactly as it returned it.
    package var message: String

    /// Creates the error.
    package init(message: String) { self.message = message }

    /// The message.
    package var description: String { message }
}

// MARK: The bindings table

extension PeonHostBindings {
    /// One WIT function bound to the ``HostInterface`` method that implements it.
    struct Binding: Sendable {
        /// The import module, e.g. `peon:host/fs@0.1.0`.
        let module: String
        /// The import field, e.g. `read-dir`.
        let name: String
        /// The WIT function as the audit log names calls, e.g. `fs.read-dir`.
        let call: String
        /// The component-level type.
        let function: CanonicalFunction
        /// Calls the host with lifted arguments and returns the value to lower.
        let invoke: @Sendable (any HostInterface, [CanonicalValue]) throws -> CanonicalValue?

        init(
            _ interface: String, _ name: String, _ function: CanonicalFunction,
            _ invoke: @escaping @Sendable (any HostInterface, [CanonicalValue]) throws -> CanonicalValue?
        ) {
            self.module = "peon:host/\(interface)@\(PeonHostBindings.version)"
            self.name = name
            self.call = "\(interface).\(name)"
            self.function = function
            self.invoke = invoke
        }

        /// The import's name in messages, e.g. `peon:host/fs@0.1.0#read`.
        var qualifiedName: String { "\(module)#\(name)" }

        /// One guest call: lift, call the host, lower. Guest faults are rethrown naming the import.
        func call(
            _ host: any HostInterface, guest: any GuestAccess, arguments: HostArguments, limits: CanonicalLimits
        ) throws -> WasmValue? {
            guard LeaveGuard.isOpen else {
                throw CanonicalValueMismatch(
                    "\(qualifiedName): called from inside cabi_realloc while the host was lowering a value, or from inside "
                        + "cabi_post_run; the canonical ABI forbids calling imports there")
            }
            if let reason = host.stopReason { throw RunStoppedByHost(reason) }
            let values = (0..<arguments.count).map { arguments[$0] }
            do {
                let result: CanonicalValue?
                var returnArea: UInt32?
                do {
                    let call = try function.liftImportArguments(values, guest: guest, limits: limits)
                    returnArea = call.returnArea
                    result = try invoke(host, call.arguments)
                } catch let limit as CanonicalLimitExceeded {
                    // The return area was checked before any argument was lifted, so it is safe to answer.
                    guard function.result != nil, function.resultInMemory, case .i32(let pointer)? = values.last else {
                        throw GuestMemoryError(limit.message)
                    }
                    returnArea = pointer
                    let refusal = HostError(.limitExceeded, limit.message)
                    host.refused(call: call, error: refusal)
                    result = .error(PeonHostBindings.errorValue(refusal))
                }
                return try LeaveGuard.closed { try function.lowerImportResult(result, returnArea: returnArea, guest: guest) }
            } catch let error as GuestMemoryError {
                throw GuestMemoryError("\(qualifiedName): \(error.message)")
            } catch let error as CanonicalLimitExceeded {
                throw GuestMemoryError("\(qualifiedName): \(error.message)")
            }
        }
    }

    /// The canonical ABI's `may_leave` flag: closed while the host is lowering a value (and so inside the
    /// guest's `cabi_realloc`: a host call's result, `run`'s input) and while the guest's `cabi_post_run` runs,
    /// when an import call must trap. Kept per thread (the guest code that could call
    /// runs on the lowering thread), so the host functions hold no per-instance state and may be shared.
    enum LeaveGuard {
        static var isOpen: Bool { peon_lowering_depth() == 0 }

        static func closed<R>(_ body: () throws -> R) rethrows -> R {
            peon_adjust_lowering_depth(1)
            defer { peon_adjust_lowering_depth(-1) }
            return try body()
        }
    }

    struct ImportKey: Hashable {
        let module: String
        let name: String
    }

    static let bindingsByImport: [ImportKey: Binding] = Dictionary(
        bindings.map { (ImportKey(module: $0.module, name: $0.name), $0) }, uniquingKeysWith: { first, _ in first })

    /// Every WIT function, in the order of `wit/peon.wit`.
    static let bindings: [Binding] = [
        Binding("fs", "read", CanonicalFunction([.string], result: .result(ok: .list(.u8), error: WIT.error))) { host, arguments in
            let path = try arguments[0].asString()
            return outcome { () throws(HostError) in .bytes(try host.read(path: path)) }
        },
        Binding("fs", "write", CanonicalFunction([.string, .list(.u8)], result: .result(ok: nil, error: WIT.error))) { host, arguments in
            let path = try arguments[0].asString()
            let data = try arguments[1].asBytes()
            return outcome { () throws(HostError) in try host.write(path: path, data: data); return nil }
        },
        Binding("fs", "append", CanonicalFunction([.string, .list(.u8)], result: .result(ok: nil, error: WIT.error))) { host, arguments in
            let path = try arguments[0].asString()
            let data = try arguments[1].asBytes()
            return outcome { () throws(HostError) in try host.append(path: path, data: data); return nil }
        },
        Binding("fs", "read-dir", CanonicalFunction([.string], result: .result(ok: .list(.string), error: WIT.error))) { host, arguments in
            let path = try arguments[0].asString()
            return outcome { () throws(HostError) in .list(try host.readDirectory(path: path).map(CanonicalValue.string)) }
        },
        Binding("fs", "remove", CanonicalFunction([.string], result: .result(ok: nil, error: WIT.error))) { host, arguments in
            let path = try arguments[0].asString()
            return outcome { () throws(HostError) in try host.remove(path: path); return nil }
        },
        Binding("http", "send", CanonicalFunction([WIT.request], result: .result(ok: WIT.response, error: WIT.error))) { host, arguments in
            let request = try WIT.decodeRequest(arguments[0])
            return outcome { () throws(HostError) in WIT.encode(try host.send(request)) }
        },
        Binding("db", "query", CanonicalFunction([.string, .string, .list(WIT.value)], result: .result(ok: WIT.rows, error: WIT.error))) {
            host, arguments in
            let database = try arguments[0].asString()
            let sql = try arguments[1].asString()
            let parameters = try arguments[2].asList().map(WIT.decodeValue)
            return outcome { () throws(HostError) in
                WIT.encode(try host.query(database: database, sql: sql, parameters: parameters))
            }
        },
        Binding("db", "execute", CanonicalFunction([.string, .string, .list(WIT.value)], result: .result(ok: .u64, error: WIT.error))) {
            host, arguments in
            let database = try arguments[0].asString()
            let sql = try arguments[1].asString()
            let parameters = try arguments[2].asList().map(WIT.decodeValue)
            return outcome { () throws(HostError) in
                .u64(try host.execute(database: database, sql: sql, parameters: parameters))
            }
        },
        Binding("exec", "run", CanonicalFunction([.string, .list(.string), .list(.u8)], result: .result(ok: WIT.output, error: WIT.error))) {
            host, arguments in
            let program = try arguments[0].asString()
            let programArguments = try arguments[1].asList().map { try $0.asString() }
            let stdin = try arguments[2].asBytes()
            return outcome { () throws(HostError) in
                WIT.encode(try host.run(program: program, arguments: programArguments, stdin: stdin))
            }
        },
        Binding("log", "log", CanonicalFunction([WIT.level, .string])) { host, arguments in
            // Lifting has already refused a discriminant past the enum's four cases.
            let index = try arguments[0].asEnumeration()
            guard index <= UInt8.max, let level = LogLevel(rawValue: UInt8(index)) else {
                throw GuestMemoryError("log level \(index) is not one of debug, info, warn, error")
            }
            host.log(level: level, message: try arguments[1].asString())
            return nil
        },
    ]

    /// `ok(value)` from a host call, or `error(error)` for the ``HostError`` it threw.
    static func outcome(_ body: () throws(HostError) -> CanonicalValue?) -> CanonicalValue {
        do {
            return .ok(try body())
        } catch {
            return .error(errorValue(error))
        }
    }

    /// The WIT `error` record for a ``HostError``.
    static func errorValue(_ error: HostError) -> CanonicalValue {
        .record([.enumeration(UInt32(error.code.rawValue)), .string(error.message)])
    }
}
