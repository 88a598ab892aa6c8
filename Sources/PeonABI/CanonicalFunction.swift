package import PeonEngine

/// A component function type and the core signature the canonical ABI gives it, with the two halves
/// of a call the host takes part in: answering a guest's call to an import the host implements
/// (``liftImportArguments(_:guest:limits:)`` then ``lowerImportResult(_:returnArea:guest:)``), and
/// calling a guest's export (``callExport(_:arguments:in:limits:)``).
///
/// Flattening follows the spec: more than ``maxFlatParameters`` flat parameters are passed through
/// memory behind one pointer; a result that flattens to more than ``maxFlatResults`` value is written
/// through a return-area pointer the caller appends as the last parameter (imports) or returned as a
/// pointer to the callee's result area (exports).
///
/// ```swift
/// // WIT: read: func(path: string) -> result<list<u8>, error>
/// let read = CanonicalFunction([.string], result: .result(ok: .list(.u8), error: errorType))
/// read.importSignature  // (i32, i32, i32) -> ()
/// ```
package struct CanonicalFunction: Sendable, Hashable, CustomStringConvertible {
    /// The parameter types, in order.
    package var parameters: [CanonicalType] {
        didSet { flattening = Flattening(parameters, result) }
    }
    /// The result type, or `nil` for a function without a result.
    package var result: CanonicalType? {
        didSet { flattening = Flattening(parameters, result) }
    }
    /// What the canonical ABI makes of the parameters and result, worked out when they are set: every
    /// call of the function uses it.
    private var flattening: Flattening

    /// The spec's `MAX_FLAT_PARAMS`.
    package static let maxFlatParameters = 16
    /// The spec's `MAX_FLAT_RESULTS`.
    package static let maxFlatResults = 1

    /// Creates a function type.
    package init(_ parameters: [CanonicalType], result: CanonicalType? = nil) {
        self.parameters = parameters
        self.result = result
        flattening = Flattening(parameters, result)
    }

    /// Whether the parameters are passed in memory behind a single pointer.
    package var parametersInMemory: Bool { flattening.parametersInMemory }

    /// Whether the result travels through memory (a return area) rather than as a core result.
    package var resultInMemory: Bool { flattening.resultInMemory }

    /// The core signature of the function as a guest imports it (the spec's `flatten_functype` with
    /// context `lower`), e.g. `(i32, i32, i32) -> ()` for `func(string) -> result<list<u8>, error>`.
    package var importSignature: FunctionSignature { flattening.importSignature }

    /// The core signature of the function as a guest exports it (context `lift`), e.g.
    /// `(i32, i32) -> (i32)` for `func(string) -> result<string, string>`.
    package var exportSignature: FunctionSignature { flattening.exportSignature }

    /// The flat signatures and the parameters' and result's layouts, derived from the parameters and result
    /// alone (and so worked out again, by the `didSet`s above, whenever either changes).
    private struct Flattening: Sendable {
        var parametersInMemory: Bool
        var resultInMemory: Bool
        var importSignature: FunctionSignature
        var exportSignature: FunctionSignature
        /// Each parameter laid out, in order: the lifter walks these.
        var parameterLayouts: [CanonicalLayout]
        /// The tuple the parameters form when they are passed in memory (`nil` otherwise).
        var parameterTupleLayout: CanonicalLayout?
        /// The result laid out: a return area is checked against its size and alignment, and the
        /// lowerer walks it, on every call.
        var resultLayout: CanonicalLayout?

        init(_ parameters: [CanonicalType], _ result: CanonicalType?) {
            parametersInMemory = parameters.reduce(0) { $0 + $1.flatCount } > CanonicalFunction.maxFlatParameters
            resultInMemory = (result?.flatCount ?? 0) > CanonicalFunction.maxFlatResults
            let flatParameters: [WasmValueType] = parametersInMemory ? [.i32] : parameters.flatMap(\.flatTypes)
            importSignature = resultInMemory
                ? FunctionSignature(flatParameters + [.i32], [])
                : FunctionSignature(flatParameters, result?.flatTypes ?? [])
            exportSignature = FunctionSignature(flatParameters, resultInMemory ? [.i32] : (result?.flatTypes ?? []))
            parameterLayouts = parameters.map(CanonicalLayout.init)
            parameterTupleLayout = parametersInMemory ? CanonicalLayout(.record(parameters)) : nil
            resultLayout = result.map(CanonicalLayout.init)
        }
    }

    /// Two function types are the same when their parameters and result are (the rest follows from them).
    package static func == (lhs: CanonicalFunction, rhs: CanonicalFunction) -> Bool {
        lhs.parameters == rhs.parameters && lhs.result == rhs.result
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(parameters)
        hasher.combine(result)
    }

    /// `func(params) -> result`.
    package var description: String {
        "func(\(parameters.map(\.description).joined(separator: ", ")))" + (result.map { " -> \($0)" } ?? "")
    }

    // MARK: A guest calls an import the host implements

    /// A guest's call to a host import, lifted: the argument values and where the result goes.
    package struct ImportCall {
        /// The lifted arguments, one per parameter.
        package var arguments: [CanonicalValue]
        /// The return area the guest passed, already checked for alignment and bounds, when
        /// ``CanonicalFunction/resultInMemory``.
        package var returnArea: UInt32?
    }

    /// Checks the return area (when there is one) and lifts the arguments of a guest's call.
    ///
    /// The return area is checked first, so a call with a bad one fails before the host acts on it.
    /// Throws ``GuestMemoryError`` for a malformed argument or return area, ``CanonicalLimitExceeded``
    /// for arguments beyond `limits`.
    package func liftImportArguments(
        _ values: [WasmValue], guest: any GuestAccess, limits: CanonicalLimits = CanonicalLimits()
    ) throws -> ImportCall {
        let signature = importSignature
        guard values.count == signature.parameters.count,
            zip(values, signature.parameters).allSatisfy({ $0.type == $1 })
        else {
            throw GuestMemoryError("arguments (\(values.map(\.type.description).joined(separator: ", "))) do not match \(signature)")
        }
        var returnArea: UInt32?
        var flat = values[...]
        if resultInMemory, let resultLayout = flattening.resultLayout, case .i32(let pointer)? = values.last {
            try CanonicalLifter.checkPlacement(of: resultLayout, at: pointer, what: "return area", in: guest)
            returnArea = pointer
            flat = values[..<(values.endIndex - 1)]
        }
        var lifter = CanonicalLifter(guest: guest, limits: limits)
        if let tuple = flattening.parameterTupleLayout, case .i32(let pointer)? = flat.first {
            let tupleValue = try lifter.load(tuple, at: pointer)
            return ImportCall(arguments: try tupleValue.asRecord(count: parameters.count), returnArea: returnArea)
        }
        // `values` matched the import signature above, so the flat values are the parameters' own.
        return ImportCall(arguments: try lifter.liftFlat(flattening.parameterLayouts, fromChecked: flat), returnArea: returnArea)
    }

    /// Lowers the host's result of an import call: stores it in the return area, or returns it as the
    /// single core result. Returns `nil` for a function without a core result.
    package func lowerImportResult(_ value: CanonicalValue?, returnArea: UInt32?, guest: any GuestAccess) throws -> WasmValue? {
        guard let resultLayout = flattening.resultLayout else {
            if value != nil { throw CanonicalValueMismatch("\(self) has no result, but a value was returned") }
            return nil
        }
        guard let value else { throw CanonicalValueMismatch("\(self) needs a result value") }
        let lowerer = CanonicalLowerer(guest: guest)
        if resultInMemory {
            guard let returnArea else { throw CanonicalValueMismatch("\(self) returns through memory but has no return area") }
            try lowerer.store(value, as: resultLayout, at: returnArea)
            return nil
        }
        return try lowerer.lowerFlat(value, as: resultLayout).first
    }

    // MARK: The host calls a guest export

    /// Calls the guest's export `name` with `arguments`: lowers them (allocating strings and lists
    /// through `cabi_realloc`), calls, lifts the result (checking the result-area pointer the guest
    /// returns), then calls `cabi_post_<name>` with the core results if the guest exports it.
    ///
    /// The guest code the host runs on the guest's behalf, the lowering's `cabi_realloc` calls and
    /// `cabi_post_<name>`, runs inside `importsClosed`: the canonical ABI clears the instance's `may_leave` there,
    /// so a host that serves imports passes a wrapper under which every import call is refused.
    ///
    /// Throws what the call throws (traps, host-function errors), ``GuestMemoryError`` for a malformed
    /// result, ``CanonicalLimitExceeded`` for a result beyond `limits`.
    package func callExport(
        _ name: String, arguments: [CanonicalValue], in instance: any ModuleInstance,
        limits: CanonicalLimits = CanonicalLimits(),
        importsClosed: (() throws -> Void) throws -> Void = { try $0() }
    ) throws -> CanonicalValue? {
        guard arguments.count == parameters.count else {
            throw CanonicalValueMismatch("\(self) takes \(parameters.count) arguments, \(arguments.count) given")
        }
        let guest = instance.guest
        let lowerer = CanonicalLowerer(guest: guest)
        var flat: [WasmValue] = []
        try importsClosed {
            if let tuple = flattening.parameterTupleLayout {
                let pointer = try lowerer.allocate(byteCount: tuple.size, alignment: tuple.alignment)
                try lowerer.store(.record(arguments), as: tuple, at: pointer)
                flat = [.i32(pointer)]
            } else {
                for (layout, value) in zip(flattening.parameterLayouts, arguments) {
                    flat += try lowerer.lowerFlat(value, as: layout)
                }
            }
        }
        let results = try instance.call(name, flat)
        let expected = exportSignature.results
        guard results.map(\.type) == expected else {
            throw GuestMemoryError(
                "export \(name) returned (\(results.map(\.type.description).joined(separator: ", "))) instead of (\(expected.map(\.description).joined(separator: ", ")))")
        }
        var lifter = CanonicalLifter(guest: guest, limits: limits)
        var value: CanonicalValue?
        if let resultLayout = flattening.resultLayout {
            if resultInMemory, case .i32(let pointer) = results[0] {
                try lifter.checkPlacement(of: resultLayout, at: pointer, what: "result area of export \(name)")
                value = try lifter.load(resultLayout, at: pointer)
            } else {
                // `results` matched the export signature above, whose results are the result's flat types.
                value = try lifter.liftFlat([resultLayout], fromChecked: results[...]).first
            }
        }
        let postReturn = "cabi_post_\(name)"
        if guest.hasExport(postReturn) {
            try importsClosed { _ = try instance.call(postReturn, results) }
        }
        return value
    }
}
