import Dispatch

/// All weights of a model, by GGUF tensor name: exactly the tensors its plan reads. Matrices are
/// held as ggml stores them, one row per output, in the file's type (`--weights native`) or as
/// float32 (`--weights f32`); vectors (norms, biases, RoPE factors) are always float32.
public struct ModelWeights: Sendable {
    /// Matrices by name, and their names in plan order.
    public let matrixByName: [String: WeightMatrix]
    public let vectorByName: [String: FloatBuffer]
    public let matrixNames: [String]
    public let vectorNames: [String]

    public let mode: WeightsMode

    public var tokenEmbd: WeightMatrix { matrixByName["token_embd.weight"]! }
    public var outputNorm: FloatBuffer { vectorByName["output_norm.weight"]! }
    /// The LM head; the embedding table when the model ties them (no `output.weight`).
    public var output: WeightMatrix { matrixByName["output.weight"] ?? tokenEmbd }
    public var tiedEmbeddings: Bool { matrixByName["output.weight"] == nil }

    /// Every matrix, tied weights once.
    public var matrices: [WeightMatrix] { matrixNames.map { matrixByName[$0]! } }
    /// Every float32 vector (norms, biases).
    public var vectors: [FloatBuffer] { vectorNames.map { vectorByName[$0]! } }

    public func matrix(_ name: String) -> WeightMatrix {
        guard let m = matrixByName[name] else { preconditionFailure("the plan reads \(name), which was not loaded") }
        return m
    }

    public func vector(_ name: String) -> FloatBuffer {
        guard let v = vectorByName[name] else { preconditionFailure("the plan reads \(name), which was not loaded") }
        return v
    }

    /// Total parameters (tied weights counted once).
    public var parameterCount: Int {
        matrices.reduce(0) { $0 + $1.rows * $1.cols } + vectors.reduce(0) { $0 + $1.count }
    }

    /// Bytes the weights take as held: matrices in their types (or float32), vectors as float32.
    public var bytes: Int {
        matrices.reduce(0) { $0 + $1.bytes } + vectors.reduce(0) { $0 + $1.count * 4 }
    }

    /// Reads every tensor the plan names and checks its shape and type; refuses a file with
    /// tensors the plan would ignore (a feature Strata does not implement would silently be
    /// lost). Vectors are dequantized; matrices stay in the mapped file (`.native`) or are
    /// dequantized too (`.f32`), in parallel.
    init(gguf: GGUFFile, plan: ModelPlan, mode: WeightsMode = .native) throws {
        self.mode = mode
        let wanted = plan.tensors
        var found: [GGUFTensorInfo] = []
        for spec in wanted {
            guard let info = gguf.tensorInfo(spec.name) else { throw ModelError.missingTensor(spec.name) }
            // Trailing 1s are equivalent (a bias may be stored [n, 1]).
            var dims = info.dims
            while dims.count > spec.shape.count, dims.last == 1 { dims.removeLast() }
            guard dims == spec.shape else { throw ModelError.wrongShape(tensor: spec.name, expected: spec.shape, found: info.dims) }
            guard info.type.isSupported, WeightMatrix.nativeSupported(info.type) else {
                throw GGUFError.unsupportedTensorType(info.type, tensor: spec.name)
            }
            found.append(info)
        }
        let used = Set(wanted.map(\.name))
        let unused = gguf.tensors.map(\.name).filter { !used.contains($0) }
        if !unused.isEmpty {
            throw ModelError.unusedTensors(unused, architecture: plan.architecture)
        }
        let infos = found
        // A tensor is dequantized at load if it is a vector, or a matrix in f32 mode.
        let dequantized = wanted.map { mode == .f32 || !$0.isMatrix }
        let buffers = infos.indices.map { dequantized[$0] ? FloatBuffer(count: infos[$0].elementCount, zeroed: false) : nil }
        DispatchQueue.concurrentPerform(iterations: infos.count) { i in
            guard let buffer = buffers[i] else { return }
            gguf.withTensorBytes(infos[i]) { raw in
                buffer.withUnsafeMutableBufferPointer { dst in
                    Dequantize.run(infos[i].type, src: raw, count: infos[i].elementCount, into: dst)
                }
            }
        }
        var vectors: [String: FloatBuffer] = [:], matrices: [String: WeightMatrix] = [:]
        var vectorNames: [String] = [], matrixNames: [String] = []
        for (i, spec) in wanted.enumerated() {
            if !spec.isMatrix { vectors[spec.name] = buffers[i]!; vectorNames.append(spec.name); continue }
            let rows = spec.shape[1], cols = spec.shape[0]
            matrices[spec.name] = buffers[i].map { WeightMatrix(name: spec.name, floats: $0, rows: rows, cols: cols) }
                ?? WeightMatrix(name: spec.name, info: infos[i], rows: rows, cols: cols, file: gguf)
            matrixNames.append(spec.name)
        }
        matrixByName = matrices
        vectorByName = vectors
        self.matrixNames = matrixNames
        self.vectorNames = vectorNames
    }
}

/// Every matrix the plan multiplies by, repacked for the `simd` backend, made once per model when
/// the first `simd` context is created: float32 panels in f32 mode (a second copy of the weights),
/// or panels of the file's blocks in native mode, after which the mapped pages are released (this
/// copy is then the only one resident).
public final class PackedWeights: Sendable {
    public let byName: [String: PackedMatrix]
    public let activations: ActivationMode

    /// The matrices a plan multiplies by (the embedding table only when it is also the LM head).
    static func multiplied(_ plan: ModelPlan) -> [String] {
        var names: [String] = []
        for s in plan.steps {
            switch s.action {
            case let .linear(w, _, _, _, _), let .output(w): if !names.contains(w) { names.append(w) }
            default: break
            }
        }
        return names
    }

    init(_ w: ModelWeights, _ plan: ModelPlan, activations: ActivationMode) {
        self.activations = activations
        let names = Self.multiplied(plan)
        // Each matrix is packed by one thread; the matrices are spread over all cores.
        nonisolated(unsafe) var made = [PackedMatrix?](repeating: nil, count: names.count)
        made.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: names.count) { i in
                // Each matrix's mapped pages are released as soon as its panels exist, so the
                // file and its panels are never resident together (peak ≈ panels + a few matrices).
                // A tied embedding still serves token lookups: those rows fault back in one at a time.
                let m = w.matrix(names[i])
                slots[i] = PackedMatrix(m, activations: activations)
                m.releaseMappedPages()
            }
        }
        byName = Dictionary(uniqueKeysWithValues: zip(names, made.map { $0! }))
        maxCols = names.reduce(0) { max($0, w.matrix($1).cols) }
    }

    public func matrix(_ name: String) -> PackedMatrix { byName[name]! }

    /// The widest matrix's input count: a quantized panel unpacks into `width × maxCols` floats.
    public let maxCols: Int

    /// Bytes held by the packed copies.
    public var bytes: Int { byName.values.reduce(0) { $0 + $1.bytes } }

    /// Bytes the packed copies of a model's matrices would take (each padded to whole panels).
    static func bytes(for w: ModelWeights, plan: ModelPlan, activations: ActivationMode) -> Int {
        multiplied(plan).reduce(0) { $0 + PackedMatrix.bytes(for: w.matrix($1), activations: activations) }
    }
}
