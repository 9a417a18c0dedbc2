/// A metadata value, as typed in the file.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// The GGUF type code of each case.
    public enum TypeCode: UInt32, Sendable {
        case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
        case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

        /// Bytes one value takes, or nil for strings and arrays (variable length).
        var fixedSize: Int? {
            switch self {
            case .uint8, .int8, .bool: return 1
            case .uint16, .int16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64: return 8
            case .string, .array: return nil
            }
        }
    }

    /// Any integer case as Int (nil for non-integers or values that do not fit).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric case as Double.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(a) = self { return a }
        return nil
    }
}
