import CQuant
import Foundation

/// How a model's weight matrices are held.
public enum WeightsMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// In the file's own types (Q4_1, Q4_K, F16, …): the mapped file, or one copy repacked into
    /// panels for the `simd` kernels. The default.
    case native
    /// Dequantized to float32 at load: the float32 reference, and today's path for comparison.
    case f32

    public var description: String { rawValue }
}

/// What the `simd` backend multiplies quantized weights with.
public enum ActivationMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Float32 activations; weights unpacked to exactly their dequantized floats in registers (or
    /// a cache-resident panel). The same results as `--weights f32`, bit for bit. The library's
    /// default (`ContextOptions`), and the command line's where `standard` is not `q24`.
    case f32
    /// Activations held to 24 bits per block of 32 (three 8-bit planes, x ≈ d · (q1 + q2/254 +
    /// q3/254²), d = max|x|/127) on the integer kernels of `q8`: as accurate as float32
    /// activations (each value within max|x| / 16.4 million of x). Each weight takes three 8-bit
    /// products: with AVX2 one row runs at 0.7–0.9× `q8`'s speed and 1.2–1.5× `f32`'s, but many
    /// rows at about 0.7× the float GEMM (README, "Quantized weights").
    case q24
    /// Activations quantized per matrix multiply to 8-bit blocks of 32 (scale max|x|/127, as
    /// llama.cpp's Q8_0/Q8_1), and integer dot products on Q4_0, Q4_1 and Q8_0 weights (other
    /// types stay on float activations). About twice the speed; logits move by the 8-bit
    /// rounding (up to about 0.7 on the default model, as llama.cpp's own quantized path does).
    case q8

    public var description: String { rawValue }

    /// The command line's default: `q24` where this build's integer kernels run on AVX-512 VNNI,
    /// `f32` elsewhere. With VNNI a plane's 64 products are one instruction, so the 24-bit path
    /// outruns the exact one or keeps level with it at every row count (1.5–2.1× at batch-1 decode,
    /// 1.1–1.2× at batch 16, 1.0–1.1× at prefill: BENCHMARKS.md sitting 13) at float32 accuracy; with AVX2 it is slower for many
    /// rows (sittings 11–12), so the exact path stays. Fixed per build, never per step, so
    /// batched ≡ single holds either way.
    public static let standard: ActivationMode = strata_igemm24_vnni() != 0 ? .q24 : .f32

    /// Whether Q4_0/Q4_1/Q8_0 matrices run on the integer kernels with this mode.
    var isInteger: Bool { self != .f32 }

    /// Bytes of one quantized activation block of 32 values (0 for `f32`).
    var blockBytes: Int {
        switch self {
        case .f32: 0
        case .q8: MemoryLayout<strata_q8_block>.stride
        case .q24: MemoryLayout<strata_q24_block>.stride
        }
    }
}

/// A weight matrix `[rows × cols]`, one row per output as ggml stores it, either as float32
/// (`--weights f32`, or an F32 tensor) or as the file's blocks, row-major in the mapped file.
public final class WeightMatrix: @unchecked Sendable {
    /// The GGUF tensor's name.
    public let name: String
    /// The type the values are held in: the file's type, or `.f32` once dequantized.
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    /// Float32 values (f32 mode).
    let floats: FloatBuffer?
    /// The blocks in the mapped file (native mode); `rowBytes` apart.
    let raw: UnsafeRawPointer?
    let rowBytes: Int
    /// Keeps the mapping alive as long as `raw` is used.
    private let file: GGUFFile?
    /// Blocks this matrix owns (made from bytes in memory rather than a file).
    private let owned: UnsafeMutableRawPointer?

    init(name: String, floats: FloatBuffer, rows: Int, cols: Int) {
        precondition(floats.count >= rows * cols)
        self.name = name; type = .f32; self.rows = rows; self.cols = cols
        self.floats = floats; raw = nil; rowBytes = cols * 4; file = nil; owned = nil
    }

    /// A matrix of `type` blocks from bytes in memory (copied), `rows` rows of `cols` values.
    public init(name: String, type: GGMLType, rows: Int, cols: Int, blocks: [UInt8]) {
        let (qk, bytes) = type.blockLayout
        precondition(Self.nativeSupported(type), "\(type) has no native layout")
        precondition(cols % qk == 0 && blocks.count >= rows * (cols / qk) * bytes, "blocks too short for [\(rows)×\(cols)] \(type)")
        self.name = name; self.type = type; self.rows = rows; self.cols = cols
        floats = nil; file = nil
        let total = rows * (cols / qk * bytes)
        rowBytes = cols / qk * bytes
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
        blocks.withUnsafeBytes { if total > 0 { p.copyMemory(from: $0.baseAddress!, byteCount: total) } }
        owned = p
        raw = UnsafeRawPointer(p)
    }

    deinit { owned?.deallocate() }

    init(name: String, info: GGUFTensorInfo, rows: Int, cols: Int, file: GGUFFile) {
        self.name = name; type = info.type; self.rows = rows; self.cols = cols
        floats = nil
        let (qk, bytes) = info.type.blockLayout
        rowBytes = cols / qk * bytes
        raw = file.tensorBase(info)
        self.file = file
        owned = nil
    }

    /// Bytes the values take as held (the file's blocks, or float32).
    public var bytes: Int { floats != nil ? rows * cols * 4 : rows * rowBytes }

    /// Whether the values are float32 in memory (f32 mode).
    public var isFloat: Bool { floats != nil }

    /// Dequantizes rows `r` into `out` (`r.count × cols` floats, row-major).
    func dequantizeRows(_ r: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(r.lowerBound >= 0 && r.upperBound <= rows)
        if let floats {
            out.update(from: floats.base + r.lowerBound * cols, count: r.count * cols)
            return
        }
        let src = UnsafeRawBufferPointer(start: raw! + r.lowerBound * rowBytes, count: r.count * rowBytes)
        Dequantize.run(type, src: src, count: r.count * cols, into: UnsafeMutableBufferPointer(start: out, count: r.count * cols))
    }

    /// The matrix as a float view (f32 mode only).
    var floatMatrix: Matrix? { floats?.matrix(rows: rows, cols: cols) }

    /// Tells the kernel the mapped pages of this matrix are not needed now (after they were
    /// repacked): they leave the resident set and come back from the page cache if read again.
    func releaseMappedPages() {
        // Only a mapping's pages can be dropped and fault back in; a heap copy's would be lost.
        guard let raw, let file, !file.file.owned else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: raw) + page - 1) / page * page
        let end = (Int(bitPattern: raw) + rows * rowBytes) / page * page
        if end > start { madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }

    /// Whether a type can be held natively: it has a panel layout for the `simd` kernels (every
    /// type `Dequantize` handles).
    static func nativeSupported(_ type: GGMLType) -> Bool {
        type.isSupported && strata_qpanel_block_values(Int32(type.rawValue)) > 0
    }
}
