import PeonABI
import PeonInterface

/// The types of `wit/peon.wit` as canonical types, and the conversions between their values and the
/// Swift types of ``HostInterface``. Field and case order is the WIT declaration order, which is what
/// the canonical ABI lays out.
enum WIT {
    /// `enum error-code { denied, invalid-argument, not-found, limit-exceeded, io, timeout }`
    static let errorCode = CanonicalType.enumeration(HostErrorCode.allCases.count)
    /// `record error { code: error-code, message: string }`
    static let error = CanonicalType.record([errorCode, .string])
    /// `record header { name: string, value: string }`
    static let header = CanonicalType.record([.string, .string])
    /// `record request { method: string, url: string, headers: list<header>, body: list<u8> }`
    static let request = CanonicalType.record([.string, .string, .list(header), .list(.u8)])
    /// `record response { status: u16, headers: list<header>, body: list<u8> }`
    static let response = CanonicalType.record([.u16, .list(header), .list(.u8)])
    /// `variant value { null, integer(s64), real(f64), text(string), blob(list<u8>) }`
    static let value = CanonicalType.variant([nil, .s64, .f64, .string, .list(.u8)])
    /// `record rows { columns: list<string>, rows: list<list<value>> }`
    static let rows = CanonicalType.record([.list(.string), .list(.list(value))])
    /// `record output { code: s32, stdout: list<u8>, stderr: list<u8> }`
    static let output = CanonicalType.record([.s32, .list(.u8), .list(.u8)])
    /// `enum level { debug, info, warn, error }`
    static let level = CanonicalType.enumeration(LogLevel.allCases.count)

    static func decodeRequest(_ value: CanonicalValue) throws -> HTTPRequestValue {
        let fields = try value.asRecord(count: 4)
        return HTTPRequestValue(
            method: try fields[0].asString(),
            url: try fields[1].asString(),
            headers: try fields[2].asList().map(decodeHeader),
            body: try fields[3].asBytes())
    }

    static func decodeHeader(_ value: CanonicalValue) throws -> HTTPHeader {
        let fields = try value.asRecord(count: 2)
        return HTTPHeader(name: try fields[0].asString(), value: try fields[1].asString())
    }

    static func encode(_ header: HTTPHeader) -> CanonicalValue {
        .record([.string(header.name), .string(header.value)])
    }

    static func encode(_ response: HTTPResponseValue) -> CanonicalValue {
        .record([.u16(response.status), .list(response.headers.map(encode)), .bytes(response.body)])
    }

    static func decodeValue(_ value: CanonicalValue) throws -> DatabaseValue {
        let (index, payload) = try value.asVariant()
        switch (index, payload) {
        case (0, nil): return .null
        case (1, let payload?): return .integer(try payload.asS64())
        case (2, let payload?): return .real(try payload.asF64())
        case (3, let payload?): return .text(try payload.asString())
        case (4, let payload?): return .blob(try payload.asBytes())
        default: throw CanonicalValueMismatch("db value case \(index) is not one of null, integer, real, text, blob")
        }
    }

    static func encode(_ value: DatabaseValue) -> CanonicalValue {
        switch value {
        case .null: .variant(case: 0, payload: nil)
        case .integer(let integer): .variant(case: 1, payload: .s64(integer))
        case .real(let real): .variant(case: 2, payload: .f64(real))
        case .text(let text): .variant(case: 3, payload: .string(text))
        case .blob(let blob): .variant(case: 4, payload: .bytes(blob))
        }
    }

    static func encode(_ rows: DatabaseRows) -> CanonicalValue {
        .record([
            .list(rows.columns.map(CanonicalValue.string)),
            .list(rows.rows.map { .list($0.map(encode)) }),
        ])
    }

    static func encode(_ output: ExecOutput) -> CanonicalValue {
        .record([.s32(output.code), .bytes(output.stdout), .bytes(output.stderr)])
    }
}
