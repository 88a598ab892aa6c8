public import PeonPolicy

/// A place outside the file system that holds policy lines (`p`, `g`, ... rules), such as the
/// `casbin_rule` table Casbin's SQL adapters share. `--policy` names one instead of a CSV file; its
/// lines take the CSV's place, and the model and grants compose with them as with a file.
///
/// The protocol keeps the mediator free of any database client: the store's target implements it
/// and the command line hands it in through ``PolicySources/policyStore``.
public protocol PolicyLineStore: AnyObject, Sendable {
    /// Names the store in messages, rule locations and audit entries; never holds a secret.
    var name: String { get }
    /// How often the reloader re-reads the lines to catch a change nobody announced.
    var pollInterval: Duration { get }
    /// Reads every line now, in the store's order. Blocks the calling thread (never call it from an
    /// async context). Throws one line when the store cannot be reached or read.
    func loadRules() throws(PolicyLoadError) -> [PolicyRule]
    /// Starts listening for the store's change announcements and calls `changed` for each (and
    /// after each reconnect, since announcements may have been missed meanwhile).
    func startWatching(_ changed: @escaping @Sendable () -> Void)
    /// Stops listening.
    func stopWatching()
}
