import PeonMediator
import PeonPostgres

extension PolicySources {
    /// The policy sources `--grants`, `--model` and `--policy` name, as every command that decides
    /// (`run`, `policy explain`, and any other) loads them: a `--policy` of the form
    /// `postgresql://...` is a policy store (Casbin's `casbin_rule` table, ``PostgresPolicyStore``),
    /// anything else a CSV file. Throws one line for a malformed address.
    static func commandLine(grants: String?, model: String?, policy: String?) throws(PostgresStoreError) -> PolicySources {
        guard let policy, PostgresAddress.isAddress(policy) else {
            return PolicySources(grantsPath: grants, modelPath: model, policyPath: policy)
        }
        let store = PostgresPolicyStore(try PostgresAddress(policy))
        return PolicySources(grantsPath: grants, modelPath: model, policyStore: store)
    }
}

/// `--key ORIGIN=KEY` (the verifier key text or a file holding it), or a bare `KEY` whose name is its origin.
func originKey(_ option: String) -> (origin: String?, key: String) {
    if let equals = option.firstIndex(of: "="), !option[..<equals].contains("+") {
        return (String(option[..<equals]), String(option[option.index(after: equals)...]))
    }
    return (nil, option)
}
