/// Errors about a model's contents (as opposed to the GGUF container).
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case unsupportedArchitecture(String, supported: [String])
    case missingTensor(String)
    case wrongShape(tensor: String, expected: [Int], found: [Int])
    case invalidHyperparameter(key: String, value: String, reason: String)
    case modelNotFound(String)
    case unusedTensors([String], architecture: String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a, supported):
            return "unsupported architecture '\(a)' (general.architecture); Strata runs: \(supported.joined(separator: ", "))"
        case let .missingTensor(n): return "tensor '\(n)' is missing from the model"
        case let .wrongShape(n, e, f): return "tensor '\(n)' has shape \(f), expected \(e)"
        case let .invalidHyperparameter(key, value, reason): return "metadata '\(key)' = \(value): \(reason)"
        case let .modelNotFound(msg): return msg
        case let .unusedTensors(names, a):
            let shown = names.prefix(5).joined(separator: ", ") + (names.count > 5 ? " and \(names.count - 5) more" : "")
            return "the file holds tensors Strata's '\(a)' forward pass does not use (\(shown)); refusing to run without them, since the model needs something Strata does not implement"
        }
    }
}
