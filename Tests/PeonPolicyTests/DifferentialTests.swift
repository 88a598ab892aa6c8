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

    static let scenarios: [Scenario] = {
        guard let url = Bundle.module.url(forResource: "differential", withExtension: "json", subdirectory: "Fixtures"),
              let data = try? Data(contentsOf: url),
              let fixture = try? JSONDecoder().decode(Fixture.self, from: data) else { return [] }
        return fixture.scenarios
    }()

    @Test func theRecordedFixturesAreLoaded() {
        #expect(Self.scenarios.count >= 15)
        #expect(Self.scenarios.reduce(0) { $0 + $1.cases.count } >= 1000)
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
