/// The functions a matcher may call, by name, with their arity.
///
/// `standard` holds Casbin's pattern functions: `keyMatch`, `keyMatch2`...`keyMatch5`,
/// `regexMatch`, `globMatch` and `ipMatch` (all `(subject, pattern)`; their patterns are compiled
/// once per policy line at load time), and Go Casbin's `keyGet(key, pattern)`,
/// `keyGet2(key, pattern, name)` and `keyGet3(key, pattern, name)`, which return the matched part. Custom functions (the grants layer's `**` path glob, for
/// example) are registered from Swift and called with the evaluated arguments:
///
/// ```swift
/// var functions = FunctionRegistry.standard
/// functions.register("pathGlob", arity: 2) { arguments in
///     guard case .string(let path) = arguments[0], case .string(let pattern) = arguments[1] else {
///         throw MyError.notAString
///     }
///     return .bool(matchDoubleStar(path, pattern))
/// }
/// let enforcer = try Enforcer(model: model, modelSource: "m.conf", policy: csv, policySource: "p.csv", functions: functions)
/// ```
///
/// The role functions (`g`, `g2`, ... from `[role_definition]`) and `eval` are provided by the
/// model, not the registry.
public struct FunctionRegistry: Sendable {
    enum Body: Sendable {
        case builtin(BuiltinMatcher)
        case custom(@Sendable ([PolicyValue]) throws -> PolicyValue)
    }

    struct Entry: Sendable {
        var arity: Int
        var body: Body
    }

    var entries: [String: Entry] = [:]

    /// A registry with no functions at all.
    public init() {}

    /// Casbin's built-in pattern functions.
    public static var standard: FunctionRegistry {
        var registry = FunctionRegistry()
        for matcher in BuiltinMatcher.allCases {
            registry.entries[matcher.rawValue] = Entry(arity: 2, body: .builtin(matcher))
        }
        registry.register("keyGet", arity: 2) { arguments throws(KeyGetError) in
            guard case .string(let key) = arguments[0], case .string(let pattern) = arguments[1] else {
                throw KeyGetError(message: "needs string arguments")
            }
            return .string(KeyGet.keyGet(key, pattern))
        }
        for (name, braces) in [("keyGet2", false), ("keyGet3", true)] {
            registry.register(name, arity: 3) { arguments throws(KeyGetError) in
                guard case .string(let key) = arguments[0], case .string(let pattern) = arguments[1],
                      case .string(let variable) = arguments[2] else {
                    throw KeyGetError(message: "needs string arguments")
                }
                let result = Result { () throws(RegexSyntaxError) in try KeyGet.keyGet(key, pattern, variable: variable, braces: braces) }
                switch result {
                case .success(let value): return .string(value)
                case .failure(let error): throw KeyGetError(message: "invalid pattern '\(pattern)': \(error.message)")
                }
            }
        }
        return registry
    }

    /// Registers (or replaces) the function `name` taking exactly `arity` arguments. Matchers that
    /// call it with another number of arguments fail to load. An error thrown by `body` fails the
    /// enforce call with a `PolicyError` naming the call site.
    public mutating func register(
        _ name: String, arity: Int, _ body: @escaping @Sendable ([PolicyValue]) throws -> PolicyValue
    ) {
        entries[name] = Entry(arity: arity, body: .custom(body))
    }

    /// The names of all registered functions, sorted.
    public var names: [String] { entries.keys.sorted() }
}

/// A `keyGet` family function called with arguments it cannot use.
struct KeyGetError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
