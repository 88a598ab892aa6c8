/// A problem with a model, a policy or a request, located where it was found.
///
/// It renders as one line, `FILE:LINE:COLUMN: what; expected ...`, so a policy author can jump to
/// the spot. Load-time errors (syntax, unknown functions, wrong arity, undefined `r.`/`p.` fields,
/// invalid regexes and CIDRs) point into the model or policy file; the few enforce-time errors
/// (a request value of the wrong type, a custom function failing) point at the matcher expression.
public struct PolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file name or label of the text the error is in (`model.conf`, `policy.csv`, `request`).
    public var source: String
    /// The 1-based line, or 0 when the error is about the text as a whole.
    public var line: Int
    /// The 1-based column (in characters), or 0 when unknown.
    public var column: Int
    /// What is wrong and, where it helps, what was expected.
    public var message: String

    /// Creates an error at `source:line:column`.
    public init(source: String, line: Int, column: Int, message: String) {
        self.source = source
        self.line = line
        self.column = column
        self.message = message
    }

    /// `FILE:LINE:COLUMN: message` (line and column omitted when unknown).
    public var description: String {
        if line <= 0 { return "\(source): \(message)" }
        if column <= 0 { return "\(source):\(line): \(message)" }
        return "\(source):\(line):\(column): \(message)"
    }
}
