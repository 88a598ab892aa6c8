import Foundation
import PeonPolicy
import Testing

/// The reference is pycasbin 1.43.0: `Fixtures/generate.py` recorded its answers for ACL, RBAC
/// (with a cycle and a chain past the depth limit), RBAC with domains, allow-and-deny,
/// deny-override, priority, keyMatch...keyMatch5, regexMatch, ipMatch, globMatch, eval() and ABAC
/// attribute access. We must agree on every decision and, where pycasbin names the deciding rule,
/// on that rule too.
@Suite struct DifferentialTests {
    struct Fixture: Decodable {
        var scenarios: [Scenario]
    }

    struct Scenario: Decodable, CustomTestStringConvertible {
        var name: String
        var model: String
        var policy: String
        var cases: [Case]
        var testDescription: String { name }
    }

    struct Case: Decodable {
        var request: [PolicyValue]
        var allowed: Bool
        var rule: [String]?
    }

    static func load(_ name: String) -> [Scenario] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"),
              let data = try? Data(contentsOf: url),
              let fixture = try? JSONDecoder().decode(Fixture.self, from: data) else { return [] }
        return fixture.scenarios
    }

    static let scenarios = load("differential")

    /// Recorded from pycasbin 2.8.0 by `Fixtures/generate_conformance.py`: doublestar globMatch with
    /// `[!...]`, `p_eft`, `in [...]`, trailing comments, temporal role links with and without domains.
    static let conformanceScenarios = load("conformance")

    @Test func theRecordedFixturesAreLoaded() {
        #expect(Self.scenarios.count >= 15)
        #expect(Self.scenarios.reduce(0) { $0 + $1.cases.count } >= 1000)
        #expect(Self.conformanceScenarios.count >= 5)
        #expect(Self.conformanceScenarios.reduce(0) { $0 + $1.cases.count } >= 400)
    }

    @Test(arguments: conformanceScenarios)
    func everyDecisionAgreesWithPycasbin28(_ scenario: Scenario) throws {
        try everyDecisionAgreesWithPycasbin(scenario)
    }

    @Test(arguments: scenarios)
    func everyDecisionAgreesWithPycasbin(_ scenario: Scenario) throws {
        let enforcer = try Enforcer(model: scenario.model, modelSource: "\(scenario.name).conf", policy: scenario.policy, policySource: "\(scenario.name).csv")
        for testCase in scenario.cases {
            let decision = try enforcer.enforce(testCase.request)
            #expect(decision.isAllowed == testCase.allowed, "\(scenario.name): \(testCase.request)")
            if let rule = testCase.rule {
                #expect(decision.rule?.values == rule, "\(scenario.name): \(testCase.request) decided by \(rule)")
            }
        }
    }
}
