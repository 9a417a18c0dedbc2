/// Everything that can be wrong with a GGUF file. Each case names what is wrong and where.
public enum GGUFError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case badMagic(found: UInt32)
    case unsupportedVersion(UInt32)
    /// The file ended while reading `what` at byte `offset`.
    case truncated(what: String, offset: Int)
    /// A count or length that cannot fit in the rest of the file.
    case implausible(what: String, value: UInt64, offset: Int)
    case unknownValueType(UInt32, key: String, offset: Int)
    case duplicateKey(String, offset: Int)
    case duplicateTensor(String)
    case invalidUTF8(what: String, offset: Int)
    case unknownTensorType(UInt32, tensor: String)
    case badDimensions(tensor: String, dims: [UInt64])
    case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfBounds(tensor: String, offset: UInt64, size: UInt64, available: UInt64)
    case badAlignment(Int64)
    case wrongType(key: String, expected: String)
    case missingKey(String)
    case unsupportedTensorType(GGMLType, tensor: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot open '\(path)': \(reason)"
        case let .badMagic(found):
            return "not a GGUF file: magic is 0x\(String(found, radix: 16)), expected 0x46554747 ('GGUF')"
        case let .unsupportedVersion(v): return "unsupported GGUF version \(v) (supported: 2, 3)"
        case let .truncated(what, offset): return "file is truncated: \(what) at byte \(offset) runs past the end"
        case let .implausible(what, value, offset): return "implausible \(what) \(value) at byte \(offset): larger than the file allows"
        case let .unknownValueType(t, key, offset): return "unknown metadata value type \(t) for key '\(key)' at byte \(offset)"
        case let .duplicateKey(k, offset): return "duplicate metadata key '\(k)' at byte \(offset)"
        case let .duplicateTensor(n): return "duplicate tensor name '\(n)'"
        case let .invalidUTF8(what, offset): return "\(what) at byte \(offset) is not valid UTF-8"
        case let .unknownTensorType(t, name): return "tensor '\(name)' has unknown ggml type \(t)"
        case let .badDimensions(name, dims): return "tensor '\(name)' has invalid dimensions \(dims)"
        case let .misalignedTensor(name, offset, alignment):
            return "tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .tensorOutOfBounds(name, offset, size, available):
            return "tensor '\(name)' data [\(offset), \(offset &+ size)) runs past the end of the data section (\(available) bytes)"
        case let .badAlignment(a): return "general.alignment \(a) is not a power of two between 1 and 65536"
        case let .wrongType(key, expected): return "metadata key '\(key)' does not hold \(expected)"
        case let .missingKey(k): return "metadata key '\(k)' is missing"
        case let .unsupportedTensorType(t, name): return "tensor '\(name)' has type \(t), which Strata cannot dequantize"
        }
    }
}
