/// What kind of thing a module imports or exports, with its type where the host cares about it.
package enum ExternalKind: Sendable, Hashable, CustomStringConvertible {
    case function(FunctionSignature)
    /// A linear memory with its limits in 64 KiB pages.
    case memory(minimumPages: UInt64, maximumPages: UInt64?)
    case table
    case global
    case tag

    /// A short rendering such as `func (i32) -> ()` or `memory 1..16`.
    package var description: String {
        switch self {
        case .function(let signature): "func \(signature)"
        case .memory(let min, let max): "memory \(min)..\(max.map(String.init) ?? "")"
        case .table: "table"
        case .global: "global"
        case .tag: "tag"
        }
    }
}

/// One import of a module: the `module` and `name` it asks the host for.
public struct ImportDescriptor: Sendable, Hashable {
    /// The import's module name, e.g. `wasi_snapshot_preview1` or `peon:host/fs@0.1.0`.
    package var module: String
    /// The field name inside that module, e.g. `fd_write` or `read`.
    package var name: String
    /// What is imported.
    package var kind: ExternalKind

    /// Creates an import descriptor.
    package init(module: String, name: String, kind: ExternalKind) {
        self.module = module
        self.name = name
        self.kind = kind
    }
}

/// One export of a module.
public struct ExportDescriptor: Sendable, Hashable {
    /// The export's name, e.g. `_start`, `run` or `memory`.
    package var name: String
    /// What is exported.
    package var kind: ExternalKind

    /// Creates an export descriptor.
    package init(name: String, kind: ExternalKind) {
        self.name = name
        self.kind = kind
    }
}
