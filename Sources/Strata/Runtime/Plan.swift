/// The kinds of op in the forward pass, named as llama.cpp names them (and as the GGUF tensors are).
public enum OpKind: String, CaseIterable, Sendable, Codable {
    case tokenEmbd = "token_embd"
    case attnNorm = "attn_norm"
    /// Fused Q, K and V projection (Phi-3), split into the three after the multiply.
    case attnQKV = "attn_qkv"
    case attnQ = "attn_q", attnK = "attn_k", attnV = "attn_v"
    /// RMS norm of each query (key) head (Gemma 3's QK-norm).
    case attnQNorm = "attn_q_norm", attnKNorm = "attn_k_norm"
    case rope
    case kvStore = "kv_store"
    case attnScores = "attn_scores"
    case attnSoftmax = "attn_softmax"
    case attnValues = "attn_values"
    /// Scores, softmax and values fused in one kernel per query row (the BLAS backend's decode rows).
    case attnFused = "attn"
    /// Output projection: with the residual add fused in (beta = 1), or into the branch buffer
    /// when a post-norm follows.
    case attnOutput = "attn_output"
    /// Norm of the attention branch, added to the residual (Gemma 3).
    case postAttentionNorm = "post_attention_norm"
    case ffnNorm = "ffn_norm"
    case ffnGate = "ffn_gate", ffnUp = "ffn_up"
    case ffnAct = "ffn_act"
    /// Down projection, with the residual add fused in (beta = 1), or into the branch buffer.
    case ffnDown = "ffn_down"
    /// Norm of the feed-forward branch, added to the residual (Gemma 3).
    case postFfwNorm = "post_ffw_norm"
    case outputNorm = "output_norm"
    /// The LM head.
    case output
    /// Choosing the next token (recorded by the generator, not the executor).
    case sampling

    /// True for ops that are a matrix multiply with a weight matrix.
    public var isWeightGEMM: Bool {
        switch self {
        case .attnQKV, .attnQ, .attnK, .attnV, .attnOutput, .ffnGate, .ffnUp, .ffnDown, .output: true
        default: false
        }
    }
}

/// One step of the plan. `layer` is nil for ops outside the blocks. The attention step
/// (`attn_scores`) runs scores, softmax and values per head and reports all three.
public struct Op: Sendable, Equatable {
    public let kind: OpKind
    public let layer: Int?
    /// `blk.3.attn_q`, `token_embd`, `output`, …
    public let name: String

    public init(_ kind: OpKind, layer: Int? = nil) {
        self.kind = kind
        self.layer = layer
        name = layer.map { "blk.\($0).\(kind.rawValue)" } ?? kind.rawValue
    }
}

/// The activation buffers ops read and write, each `[tokens, width]`.
public enum Slot: Int, CaseIterable, Sendable {
    /// The residual stream, `[T, embd]`.
    case residual
    /// A sub-layer's normed input, `[T, embd]`.
    case normed
    /// A branch's output before its post-norm is added to the residual, `[T, embd]`.
    case branch
    case q, k, v
    /// Attention output, heads side by side, `[T, qDim]`.
    case attention
    case gate, up
    /// The output of a fused projection before it is split (`attn_qkv`, a fused `ffn_up`).
    case fused
}

/// The gated activation of the feed-forward block: `gate = act(gate) · up`.
public enum Activation: String, Sendable {
    /// SwiGLU: `x · sigmoid(x)`.
    case silu
    /// GeGLU with the tanh approximation of GELU (Gemma).
    case geluTanh = "gelu_tanh"
}

/// Rotary embedding of one layer: style, base, linear frequency scale, and per-pair frequency
/// divisors from a tensor (Llama 3's `rope_freqs.weight`).
public struct RopeSpec: Sendable, Hashable {
    public var style: RopeStyle
    public var base: Double
    /// Positions are multiplied by this (1 / the linear scaling factor).
    public var positionScale: Double = 1
    public var factorsTensor: String?
}

/// What one op does, naming tensors by their GGUF names and buffers by slot. The executor binds
/// these to memory once per context and runs them; it has no notion of architecture.
public enum Action: Sendable {
    /// `residual = table[token] · scale`.
    case embed(table: String, scale: Float)
    /// `to = rmsNorm(from) · weight`, row by row.
    case norm(weight: String, from: Slot, to: Slot)
    /// RMS norm of each head of `slot` in place (QK-norm), with one weight vector per head size.
    case headNorm(weight: String, slot: Slot, heads: Int)
    /// `to = from · Wᵀ (+ bias)`, or `to += …` with `accumulate`; with several outputs, the
    /// product goes to `.fused` and its columns are split among them in order.
    case linear(weight: String, bias: String?, from: Slot, to: [Slot], accumulate: Bool)
    /// RoPE on `q` and `k`.
    case rope(RopeSpec)
    /// Appends `k` and `v` to the layer's KV cache.
    case storeKV
    /// Causal attention of `q` over the layer's cache (keys within the last `window` positions,
    /// including the query's own, when `window` is set) into `.attention`.
    case attention(window: Int?, scale: Float)
    /// `into += rmsNorm(from) · weight` (post-norms).
    case normAdd(weight: String, from: Slot, into: Slot)
    /// `gate = act(gate) · up`.
    case gated(Activation)
    /// The final norm, on the rows that need logits only.
    case outputNorm(weight: String)
    /// The LM head on those rows.
    case output(weight: String)
}

/// One op with what it does.
public struct PlanStep: Sendable {
    public let op: Op
    public let action: Action
}

/// A tensor a plan reads: GGUF name and shape in ggml order (`[in, out]` for matrices).
public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public var isMatrix: Bool { shape.count == 2 }
}

/// An architecture's forward pass for one model: the ordered steps, the tensors they read, the
/// buffer widths, and the chat format when the file carries no template.
public struct ModelPlan: Sendable {
    public let architecture: String
    public internal(set) var steps: [PlanStep] = []
    public internal(set) var tensors: [TensorSpec] = []
    /// Width of each buffer slot (0: unused).
    public internal(set) var widths: [Int] = Array(repeating: 0, count: Slot.allCases.count)
    /// The chat format to use when the file has no `tokenizer.chat_template` (a `ChatTemplate` name).
    public internal(set) var defaultChatTemplate: String?

    public func width(_ s: Slot) -> Int { widths[s.rawValue] }
    public var ops: [Op] { steps.map(\.op) }
    /// The tied LM head reads the embedding table.
    public var tiedOutput: Bool {
        steps.contains { if case let .output(w) = $0.action { w == "token_embd.weight" } else { false } }
    }
}

/// Builds a `ModelPlan` from a config: what each architecture file uses to write its forward
/// pass in the order of the paper. Every tensor a step names is recorded with the shape the
/// step needs, so the loader checks the file against exactly what will run.
public struct PlanBuilder {
    public let config: ModelConfig
    public private(set) var plan: ModelPlan
    /// The block the next steps belong to (nil: outside the blocks).
    public var layer: Int?
    let gguf: GGUFFile?
    /// Where each needed tensor is in `plan.tensors` (a block count in the millions stays linear).
    private var tensorIndex: [String: Int] = [:]

    public init(_ c: ModelConfig, gguf: GGUFFile? = nil) {
        config = c
        self.gguf = gguf
        plan = ModelPlan(architecture: c.architecture.name)
        for (s, w) in [(Slot.residual, c.embeddingLength), (.normed, c.embeddingLength), (.q, c.qDim), (.k, c.kvDim),
                       (.v, c.kvDim), (.attention, c.qDim), (.gate, c.feedForwardLength), (.up, c.feedForwardLength)] {
            plan.widths[s.rawValue] = w
        }
    }

    /// Whether the file holds a tensor (`blk.N.` is prefixed inside a block).
    public func has(_ short: String) -> Bool { gguf?.tensorInfo(tensorName(short)) != nil }
    /// Whether the file holds a tensor outside the blocks (`rope_freqs.weight`, `output.weight`).
    public func hasGlobal(_ name: String) -> Bool { gguf?.tensorInfo(name) != nil }

    public var defaultChatTemplate: String? {
        get { plan.defaultChatTemplate }
        set { plan.defaultChatTemplate = newValue }
    }

    func tensorName(_ short: String) -> String { layer.map { "blk.\($0).\(short)" } ?? short }

    private mutating func need(_ name: String, _ shape: [Int]) {
        if let i = tensorIndex[name] {
            precondition(plan.tensors[i].shape == shape, "plan uses \(name) with two shapes")
            return
        }
        tensorIndex[name] = plan.tensors.count
        plan.tensors.append(TensorSpec(name: name, shape: shape))
    }

    private mutating func add(_ kind: OpKind, _ action: Action) {
        plan.steps.append(PlanStep(op: Op(kind, layer: layer), action: action))
    }

    private func kind(_ short: String) -> OpKind {
        guard let k = OpKind(rawValue: short) else { preconditionFailure("no op kind named \(short)") }
        return k
    }

    public mutating func embed(scale: Float = 1) {
        need("token_embd.weight", [config.embeddingLength, config.vocabSize])
        add(.tokenEmbd, .embed(table: "token_embd.weight", scale: scale))
    }

    /// `to = rmsNorm(from) · {short}.weight`.
    public mutating func norm(_ short: String, _ from: Slot = .residual, _ to: Slot = .normed) {
        let name = tensorName(short + ".weight")
        need(name, [plan.width(from)])
        add(kind(short), .norm(weight: name, from: from, to: to))
    }

    /// RMS norm per head of `slot`, weight `[headDim]`.
    public mutating func headNorm(_ short: String, _ slot: Slot) {
        let name = tensorName(short + ".weight")
        need(name, [config.headDim])
        add(kind(short), .headNorm(weight: name, slot: slot, heads: plan.width(slot) / config.headDim))
    }

    /// `to = from · {short}.weightᵀ (+ {short}.bias)`; `accumulate` adds into `to` instead.
    public mutating func linear(_ short: String, _ from: Slot, _ to: Slot, bias: Bool = false, accumulate: Bool = false) {
        let name = tensorName(short + ".weight")
        need(name, [plan.width(from), plan.width(to)])
        var biasName: String?
        if bias { biasName = tensorName(short + ".bias"); need(biasName!, [plan.width(to)]) }
        add(kind(short), .linear(weight: name, bias: biasName, from: from, to: [to], accumulate: accumulate))
    }

    /// One multiply whose output columns are split among `outputs`, in order (`attn_qkv`, a fused
    /// gate-and-up `ffn_up`).
    public mutating func fusedLinear(_ short: String, _ from: Slot, _ outputs: [Slot], bias: Bool = false) {
        let name = tensorName(short + ".weight")
        let total = outputs.reduce(0) { $0 + plan.width($1) }
        plan.widths[Slot.fused.rawValue] = max(plan.width(.fused), total)
        need(name, [plan.width(from), total])
        var biasName: String?
        if bias { biasName = tensorName(short + ".bias"); need(biasName!, [total]) }
        add(kind(short), .linear(weight: name, bias: biasName, from: from, to: outputs, accumulate: false))
    }

    public mutating func rope(_ spec: RopeSpec) {
        if let f = spec.factorsTensor { need(f, [config.ropeDim / 2]) }
        add(.rope, .rope(spec))
    }

    /// Stores K and V, then attends: the two ops every block has.
    public mutating func attention(window: Int? = nil, scale: Float? = nil) {
        add(.kvStore, .storeKV)
        add(.attnScores, .attention(window: window, scale: scale ?? 1 / Float(config.headDim).squareRoot()))
    }

    /// `into += rmsNorm(from) · {short}.weight`.
    public mutating func normAdd(_ short: String, _ from: Slot = .branch, into: Slot = .residual) {
        let name = tensorName(short + ".weight")
        plan.widths[Slot.branch.rawValue] = config.embeddingLength
        need(name, [plan.width(from)])
        add(kind(short), .normAdd(weight: name, from: from, into: into))
    }

    public mutating func gated(_ a: Activation) { add(.ffnAct, .gated(a)) }

    /// The final norm and the LM head: `output.weight`, or the embedding table when the file has
    /// none (tied).
    public mutating func output() {
        layer = nil
        let tied = !has("output.weight")
        need("output_norm.weight", [config.embeddingLength])
        add(.outputNorm, .outputNorm(weight: "output_norm.weight"))
        let head = tied ? "token_embd.weight" : "output.weight"
        need(head, [config.embeddingLength, config.vocabSize])
        add(.output, .output(weight: head))
    }

    /// Marks a slot as used with a width (the branch buffer, for projections into it).
    public mutating func use(_ s: Slot, width: Int) { plan.widths[s.rawValue] = max(plan.width(s), width) }
}

/// Receives the time of every op the executor runs. Absent (nil) in normal runs, so timing costs
/// nothing then. Called on the executing thread; must not block.
public protocol ExecutionObserver: AnyObject {
    /// `rows`: tokens in the step; `pairs`: query-key pairs the attention step scored (Σ over the
    /// step's sequences of its rows × its keys); times in nanoseconds from a monotonic clock.
    func record(kind: OpKind, layer: Int?, rows: Int, pairs: Int, start: UInt64, duration: UInt64)
}
