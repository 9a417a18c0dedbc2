import Foundation
import Testing
@testable import Strata

/// The default model (fetched by `make test`) and the reference fixtures beside the repository.
/// When either is missing the tests that need them fail with `missing`: they are never skipped.
enum RealModel {
    static let path: String = {
        let env = ProcessInfo.processInfo.environment["STRATA_MODEL"]
        return (env?.isEmpty == false ? env! : nil) ?? Model.defaultModelPath
    }()

    static let missing = "the default model is missing at \(path): run `make model` (make test does this)"

    static let model: Model? = try? Model(path: path)
    static let tokenizer: Tokenizer? = model.flatMap { try? Tokenizer(gguf: $0.gguf) }

    /// `../shared/fixtures/smollm2` relative to the package root, or `$STRATA_FIXTURES`.
    static let fixtures: String = {
        if let f = ProcessInfo.processInfo.environment["STRATA_FIXTURES"], !f.isEmpty { return f }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/fixtures/smollm2").path
    }()

    static func lines(_ file: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: fixtures + "/" + file, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    static func ids(_ v: Any?) -> [Int32] { (v as? [Any] ?? []).map { Int32(truncating: $0 as! NSNumber) } }
}
