#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value in an authorization request, or the result of a matcher expression.
///
/// Requests carry strings in the common case (`alice`, `/data/1`, `read`), but ABAC matchers read
/// attributes of objects (`r.sub.Age > 18`), so a request value may be a number, a boolean or an
/// object. Policy fields are always strings.
public enum PolicyValue: Sendable, Hashable {
    /// A string; compared exactly (by Unicode scalars, not by canonical equivalence, as Casbin does).
    case string(String)
    /// A number (JSON numbers and integers become `Double`).
    case number(Double)
    /// A boolean.
    case bool(Bool)
    /// An object whose attributes a matcher reads with `r.sub.Name`.
    case object([String: PolicyValue])

    /// The name of the value's type, for error messages.
    var typeName: String {
        switch self {
        case .string: "string"
        case .number: "number"
        case .bool: "boolean"
        case .object: "object"
        }
    }
}

extension PolicyValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByDictionaryLiteral
{
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// A number value.
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    /// A number value.
    public init(floatLiteral value: Double) { self = .number(value) }
    /// A boolean value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An object value.
    public init(dictionaryLiteral elements: (String, PolicyValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension PolicyValue: Codable {
    /// Decodes a JSON string, number, boolean or object (arrays and null are rejected: a matcher
    /// cannot use them).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: PolicyValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "expected a string, number, boolean or object (arrays and null are not request values)")
        }
    }

    /// Encodes as the corresponding JSON value.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A string key hashed and compared by its UTF-8 bytes, so that lookups agree with Casbin's exact
/// string comparison (Swift's `String ==` treats canonically equivalent strings as equal).
struct ExactKey: Hashable, Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (lhs: ExactKey, rhs: ExactKey) -> Bool { sameBytes(lhs.text, rhs.text) }

    func hash(into hasher: inout Hasher) {
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in text.utf8 { hasher.combine(byte) }
        }
    }
}

/// Whether two strings have the same UTF-8 bytes: Casbin's string equality (Swift's `==` would also equate
/// canonically equivalent strings). Compares lengths, then memory, where `utf8.elementsEqual` walks byte by byte.
@inline(__always)
func sameBytes(_ lhs: String, _ rhs: String) -> Bool {
    guard lhs.utf8.count == rhs.utf8.count else { return false }
    let compared = lhs.utf8.withContiguousStorageIfAvailable { left in
        rhs.utf8.withContiguousStorageIfAvailable { right in
            guard let leftBytes = left.baseAddress, let rightBytes = right.baseAddress else { return left.count == right.count }
            return memcmp(leftBytes, rightBytes, left.count) == 0
        }
    }
    if let result = compared ?? nil { return result }
    return lhs.utf8.elementsEqual(rhs.utf8)
}
