/// The kinds of op in the forward pass, named as llama.cpp names them (and as the GGUF tensors are).
public enum OpKind: String, CaseIterable, Sendable, Codable {
    case tokenEmbd = "token_embd"
    case attnNorm = "attn_norm"
    case attnQ = "attn_q", attnK = "attn_k", attnV = "attn_v"
    case rope
    case kvStore = "kv_store"
    case attnScores = "attn_scores"
    case attnSoftmax = "attn_softmax"
    case attnValues = "attn_values"
    /// Scores, softmax and values fused in one kernel per query row (the BLAS backend's decode rows).
    case attnFused = "attn"
    /// Output projection, with the residual add fused in (beta = 1).
    case attnOutput = "attn_output"
    case ffnNorm = "ffn_norm"
    case ffnGate = "ffn_gate", ffnUp = "ffn_up"
    case ffnAct = "ffn_act"
    /// Down projection, with the residual add fused in (beta = 1).
    case ffnDown = "ffn_down"
    case outputNorm = "output_norm"
    /// The LM head.
    case output
    /// Choosing the next token (recorded by the generator, not the executor).
    case sampling

    /// True for ops that are a matrix multiply with a weight matrix.
    public var isWeightGEMM: Bool {
        switch self {
        case .attnQ, .attnK, .attnV, .attnOutput, .ffnGate, .ffnUp, .ffnDown, .output: true
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

public enum Plan {
    /// The ordered ops of a Llama-family forward pass.
    public static func llama(blockCount: Int) -> [Op] {
        var ops = [Op(.tokenEmbd)]
        for l in 0 ..< blockCount {
            for kind: OpKind in [.attnNorm, .attnQ, .attnK, .attnV, .rope, .kvStore, .attnScores,
                                 .attnOutput, .ffnNorm, .ffnGate, .ffnUp, .ffnAct, .ffnDown] {
                ops.append(Op(kind, layer: l))
            }
        }
        ops += [Op(.outputNorm), Op(.output)]
        return ops
    }
}

/// Receives the time of every op the executor runs. Absent (nil) in normal runs, so timing costs
/// nothing then. Called on the executing thread; must not block.
public protocol ExecutionObserver: AnyObject {
    /// `rows`: tokens in the step; `pairs`: query-key pairs the attention step scored (Σ over the
    /// step's sequences of its rows × its keys); times in nanoseconds from a monotonic clock.
    func record(kind: OpKind, layer: Int?, rows: Int, pairs: Int, start: UInt64, duration: UInt64)
}
