// Microbenchmarks of Strata's kernels at SmolLM2-135M's real shapes, BLAS against naive, plus the
// machine's ceilings (sgemm GFLOP/s, memory bandwidth) and tokenizer encode speed.
// Run: swift run -c release strata-microbench [--quick] [--tokenizer-text FILE]
import Dispatch
import Foundation
import Strata

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Runs `body` until at least `minSeconds` have passed (after one warm-up call), `reps` times;
/// returns seconds per call for each repetition.
func measure(reps: Int = 5, minSeconds: Double = 0.2, _ body: () -> Void) -> [Double] {
    body()
    var out: [Double] = []
    for _ in 0 ..< reps {
        var calls = 0
        let t0 = now()
        repeat { body(); calls += 1 } while Double(now() - t0) / 1e9 < minSeconds
        out.append(Double(now() - t0) / 1e9 / Double(calls))
    }
    return out
}

/// Writes `values` back into `b`: for ops that work in place, before each repetition.
func restore(_ b: FloatBuffer, _ values: [Float]) {
    b.withUnsafeMutableBufferPointer { p in for i in 0 ..< values.count { p[i] = values[i] } }
}

func random(_ n: Int, seed: UInt64) -> FloatBuffer {
    var g = Xoshiro256(seed: seed)
    let b = FloatBuffer(count: n, zeroed: false)
    for i in 0 ..< n { b[i] = g.nextUnitFloat() * 2 - 1 }
    return b
}

func row(_ name: String, _ times: [Double], flops: Double? = nil, bytes: Double? = nil, unit: String = "") -> String {
    let (m, sd) = meanAndSD(times)
    var s = "| \(name) | \(String(format: "%.3f ± %.3f", m * 1e3, sd * 1e3)) ms |"
    s += flops.map { String(format: " %.1f GFLOP/s |", $0 / m / 1e9) } ?? " |"
    s += bytes.map { String(format: " %.1f GB/s |", $0 / m / 1e9) } ?? " |"
    return s + unit
}

let args = CommandLine.arguments
let quick = args.contains("--quick")
let reps = quick ? 2 : 5
BLASThreads.set(ProcessInfo.processInfo.activeProcessorCount)
print("# Strata microbenchmarks")
print("machine: \(MachineInfo.cpuModel), \(MachineInfo.cores) cores, \(MachineInfo.memory); OPENBLAS_CORETYPE=\(MachineInfo.openBLASCoreType); BLAS threads \(BLASThreads.configured); \(Date())\n")

// MARK: - Machine ceilings
print("## Machine ceilings\n")
print("| measure | time | compute | bandwidth |")
print("|---|---:|---:|---:|")
do {
    let n = 2048
    let a = random(n * n, seed: 1), b = random(n * n, seed: 2), c = FloatBuffer(count: n * n)
    print(row("sgemm 2048³ (BLAS)", measure(reps: reps) { Kernels.matmul(.blas, a: a, b: b, c: c, m: n, n: n, k: n) }, flops: 2 * pow(Double(n), 3)))
    let packed = PackedMatrix(b, rows: n, cols: n)
    print(row("packed GEMM 2048³ (simd)", measure(reps: reps) { Kernels.matmul(a: a, packed: packed, c: c, m: n) }, flops: 2 * pow(Double(n), 3)))
    // Memory bandwidth: sum a 1 GiB buffer on every core (each core reads its own half).
    let count = 1 << 28
    let big = random(count, seed: 3)
    let parts = MachineInfo.cores
    let times = measure(reps: reps, minSeconds: 0.5) {
        big.withUnsafeBufferPointer { p in
            let base = UInt(bitPattern: p.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let ptr = UnsafePointer<Float>(bitPattern: base)!
                let lo = part * count / parts, hi = (part + 1) * count / parts
                var acc = SIMD8<Float>()
                var i = lo
                while i + 8 <= hi { acc += UnsafeRawPointer(ptr + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
                if acc.sum() == 12345 { print("") }
            }
        }
    }
    print(row("read 1 GiB (\(parts) threads)", times, bytes: Double(count * 4)))
}

// MARK: - GEMM at the model's shapes
print("\n## Matrix multiplies at SmolLM2-135M's shapes (C = A·Wᵀ)\n")
print("| shape | time | compute | weights read |")
print("|---|---:|---:|---:|")
let shapes: [(String, Int, Int, Int)] = [
    ("decode 1×576 · ffn_up 1536×576", 1, 1536, 576),
    ("decode 1×576 · attn_q 576×576", 1, 576, 576),
    ("decode 1×1536 · ffn_down 576×1536", 1, 576, 1536),
    ("batch 16×576 · ffn_up 1536×576", 16, 1536, 576),
    ("prefill 512×576 · ffn_up 1536×576", 512, 1536, 576),
    ("prefill 512×576 · attn_k 192×576", 512, 192, 576),
    ("LM head 1×576 · 49152×576", 1, 49152, 576),
    ("LM head 16×576 · 49152×576", 16, 49152, 576),
]
var speedups: [(String, Double)] = []
var simdOverBLAS: [(String, Double)] = []
for (name, m, n, k) in shapes {
    let a = random(m * k, seed: 4), w = random(n * k, seed: 5), c = FloatBuffer(count: m * n)
    let packed = PackedMatrix(w, rows: n, cols: k)   // the simd backend packs its weights once, at load
    var means: [Backend: Double] = [:]
    for backend in Backend.allCases {
        if quick && backend == .naive && m * n * k > 50_000_000 { continue }
        let t = measure(reps: backend == .naive ? min(reps, 3) : reps, minSeconds: backend == .naive ? 0.3 : 0.2) {
            if backend == .simd {
                Kernels.matmul(a: a, packed: packed, c: c, m: m)
            } else {
                Kernels.matmul(backend, a: a, b: w, c: c, m: m, n: n, k: k)
            }
        }
        means[backend] = meanAndSD(t).mean
        print(row("\(name) — \(backend)", t, flops: 2 * Double(m * n * k), bytes: Double(n * k * 4)))
    }
    if let b = means[.blas], let nv = means[.naive] { speedups.append((name, nv / b)) }
    if let b = means[.blas], let sv = means[.simd] { simdOverBLAS.append((name, b / sv)) }
}
print("\nBLAS/naive speed-up: " + speedups.map { "\($0.0): \(String(format: "%.1f×", $0.1))" }.joined(separator: "; "))
print("\nsimd/BLAS speed-up: " + simdOverBLAS.map { "\($0.0): \(String(format: "%.2f×", $0.1))" }.joined(separator: "; "))

// MARK: - Other ops
print("\n## Other ops\n")
print("| op | time | | |")
print("|---|---:|---:|---:|")
for (rows, cols) in [(1, 512), (1, 4096), (512, 512)] {
    let s = random(rows * cols, seed: 6)
    let copy = s.array()
    print(row("causal softmax \(rows)×\(cols)", measure(reps: reps) {
        restore(s, copy)
        Kernels.causalSoftmax(s, rows: rows, cols: cols, scale: 0.125)
    }))
}
do {
    let x = random(512 * 576, seed: 7), w = random(576, seed: 8), y = FloatBuffer(count: 512 * 576)
    print(row("RMSNorm 512×576", measure(reps: reps) { Kernels.rmsNorm(x, weight: w, into: y, rows: 512) }))
    let q = random(512 * 576, seed: 9)
    print(row("RoPE 512 rows × 9 heads × 64 (table included)", measure(reps: reps) { Kernels.rope(q, rows: 512, heads: 9, headDim: 64, base: 100000) }))
    // SwiGLU works in place: the gate is restored before each repetition (copy included in the
    // time), or repeated application would drive it into subnormals and time those instead.
    let g = random(512 * 1536, seed: 10), u = random(512 * 1536, seed: 11), gate = g.array()
    print(row("SwiGLU 512×1536 (input copy included)", measure(reps: reps) {
        restore(g, gate)
        Kernels.swiglu(gate: g, up: u, rows: 512, cols: 1536)
    }))
    for type in [GGMLType.q4_1, .q8_0] {
        let n = 576 * 1536
        let bytes = [UInt8](repeating: 0x35, count: n / 32 * type.blockLayout.bytes)
        let out = FloatBuffer(count: n)
        print(row("dequantize \(type) 576×1536", measure(reps: reps) { Kernels.dequantize(type, bytes: bytes, count: n, into: out) },
                  bytes: Double(n * 4)) + " (GB/s of float32 written)")
    }
}

// MARK: - Tokenizer
if let i = args.firstIndex(of: "--tokenizer-text"), i + 1 < args.count {
    let path = args[i + 1]
    let modelPath = try Model.resolvePath(nil)
    let tokenizer = try Tokenizer(gguf: GGUFFile(path: modelPath))
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var ids: [Int32] = []
    let t = measure(reps: reps, minSeconds: 0.5) { ids = tokenizer.encode(text) }
    let m = meanAndSD(t).mean
    print("\n## Tokenizer\n")
    print(String(format: "encode %@ (%.2f MB, %d tokens): %.1f ± %.1f ms → %.2f MB/s, %.2f M tokens/s (one thread)",
                 path, Double(text.utf8.count) / 1e6, ids.count, m * 1e3, meanAndSD(t).sd * 1e3, Double(text.utf8.count) / m / 1e6, Double(ids.count) / m / 1e6))
    if let out = args.firstIndex(of: "--ids-out"), out + 1 < args.count {
        try ids.map(String.init).joined(separator: "\n").write(toFile: args[out + 1], atomically: true, encoding: .utf8)
    }
}
