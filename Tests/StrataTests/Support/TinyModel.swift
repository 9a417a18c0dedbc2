import Foundation
@testable import Strata

/// A tiny random-weight GGUF with a working byte-level BPE tokenizer and a ChatML template:
/// 2 layers, 64 dims, 4 query heads sharing 2 KV heads, feed-forward 128. `architecture` picks the
/// tensors: `llama`, `qwen2` (Q/K/V biases), `phi3` (fused `attn_qkv` and gate-up `ffn_up`),
/// `gemma3` (QK-norms, post-norms, `key_length` heads, a sliding window).
struct TinyModel {
    var architecture = "llama"
    var layers = 2
    var embd = 64
    var heads = 4
    var kvHeads = 2
    var ff = 128
    var context = 128
    var seed: UInt64 = 42
    var tied = true
    var weightType: GGMLType = .f32
    /// Tensors to leave out or reshape, for rejection tests.
    var omit: Set<String> = []
    var reshape: [String: [Int]] = [:]
    var extraMetadata: [(String, GGUFValue)] = []
    /// Head size when it is not embd / heads (written as `attention.key_length`).
    var keyLength: Int?
    /// `attention.sliding_window` (gemma3).
    var slidingWindow: Int?
    /// Adds Llama 3's `rope_freqs.weight` (per-pair frequency divisors).
    var ropeFreqs = false
    /// Values of `rope_freqs.weight` (default: 1, 3.5, 6, 8.5 repeating).
    var ropeFreqValues: [Float]?
    var ropeBase: Float = 10000
    /// Tensors no architecture reads, written after the others (name order).
    var extraTensors: [String: [Int]] = [:]

    static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    /// Merges over the byte alphabet: enough for common English words to become multi-byte tokens.
    static let mergeList = ["Ġ t", "h e", "i n", "Ġ a", "e r", "o n", "Ġt he", "r e", "a t", "Ġ s", "e n", "o r",
                            "Ġ w", "l l", "Ġ o", "Ġ c", "i s", "a n", "e s", "Ġ b", "e d", "Ġ f", "i t", "a r",
                            "Ġ h", "Ġ m", "o u", "Ġ p", "i c", "Ġ d", "l e", "Ġ l", "Ġ Ġ", "ĠĠ ĠĠ", "Ċ Ċ"]

    /// Vocabulary: specials, then the 256 byte characters, then merge results.
    static func vocabulary() -> (tokens: [String], types: [Int32], merges: [String]) {
        var tokens = specials
        var types = [Int32](repeating: 3, count: specials.count)
        for b in 0 ..< 256 { tokens.append(String(Character(ByteMap.encode[b]))); types.append(1) }
        for m in mergeList {
            let merged = m.replacingOccurrences(of: " ", with: "")
            if !tokens.contains(merged) { tokens.append(merged); types.append(1) }
        }
        return (tokens, types, mergeList)
    }

    var headDim: Int { keyLength ?? embd / heads }

    func writer() -> GGUFWriter {
        var w = GGUFWriter()
        let (tokens, types, merges) = Self.vocabulary()
        let a = architecture
        w.add("general.architecture", .string(a))
        w.add("general.name", .string("tiny-test"))
        w.add("\(a).block_count", .uint32(UInt32(layers)))
        w.add("\(a).context_length", .uint32(UInt32(context)))
        w.add("\(a).embedding_length", .uint32(UInt32(embd)))
        w.add("\(a).feed_forward_length", .uint32(UInt32(ff)))
        w.add("\(a).attention.head_count", .uint32(UInt32(heads)))
        w.add("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.add("\(a).rope.freq_base", .float32(ropeBase))
        w.add("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        if let keyLength {
            w.add("\(a).attention.key_length", .uint32(UInt32(keyLength)))
            w.add("\(a).attention.value_length", .uint32(UInt32(keyLength)))
        }
        if let slidingWindow { w.add("\(a).attention.sliding_window", .uint32(UInt32(slidingWindow))) }
        w.add("tokenizer.ggml.model", .string("gpt2"))
        w.add("tokenizer.ggml.pre", .string("smollm"))
        w.add("tokenizer.ggml.tokens", .array(tokens.map { .string($0) }))
        w.add("tokenizer.ggml.token_type", .array(types.map { .int32($0) }))
        w.add("tokenizer.ggml.merges", .array(merges.map { .string($0) }))
        w.add("tokenizer.ggml.bos_token_id", .uint32(1))
        w.add("tokenizer.ggml.eos_token_id", .uint32(2))
        w.add("tokenizer.ggml.add_bos_token", .bool(false))
        w.add("tokenizer.chat_template", .string("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"))
        for (k, v) in extraMetadata { w.add(k, v) }

        var rng = TestRNG(seed: seed)
        let vocab = tokens.count
        let q = heads * headDim, kv = kvHeads * headDim
        func add(_ name: String, _ dims: [Int], scale: Float, ones: Bool = false) {
            guard !omit.contains(name) else { return }
            let d = reshape[name] ?? dims
            let n = d.reduce(1, *)
            let values = ones ? (0 ..< n).map { _ in 1 + rng.float(0.1) } : rng.floats(n, scale: scale)
            if weightType == .f32 || d.count == 1 {
                w.addTensor(name, dims: d, floats: values)
            } else {
                w.addTensor(name, dims: d, type: weightType.rawValue, bytes: Quantize.encode(values, as: weightType))
            }
        }
        add("token_embd.weight", [embd, vocab], scale: 1)
        add("output_norm.weight", [embd], scale: 0, ones: true)
        if !tied { add("output.weight", [embd, vocab], scale: 0.3) }
        if ropeFreqs && !omit.contains("rope_freqs.weight") {
            w.addTensor("rope_freqs.weight", dims: [headDim / 2], floats: ropeFreqValues ?? (0 ..< headDim / 2).map { 1 + Float($0 % 4) * 2.5 })
        }
        for l in 0 ..< layers {
            let b = "blk.\(l)."
            add(b + "attn_norm.weight", [embd], scale: 0, ones: true)
            if architecture == "phi3" {
                add(b + "attn_qkv.weight", [embd, q + 2 * kv], scale: 0.3)
            } else {
                add(b + "attn_q.weight", [embd, q], scale: 0.3)
                add(b + "attn_k.weight", [embd, kv], scale: 0.3)
                add(b + "attn_v.weight", [embd, kv], scale: 0.3)
            }
            add(b + "attn_output.weight", [q, embd], scale: 0.2)
            add(b + "ffn_norm.weight", [embd], scale: 0, ones: true)
            if architecture == "phi3" {
                add(b + "ffn_up.weight", [embd, 2 * ff], scale: 0.3)
            } else {
                add(b + "ffn_gate.weight", [embd, ff], scale: 0.3)
                add(b + "ffn_up.weight", [embd, ff], scale: 0.3)
            }
            add(b + "ffn_down.weight", [ff, embd], scale: 0.2)
            if architecture == "gemma3" {
                add(b + "attn_q_norm.weight", [headDim], scale: 0, ones: true)
                add(b + "attn_k_norm.weight", [headDim], scale: 0, ones: true)
                add(b + "post_attention_norm.weight", [embd], scale: 0, ones: true)
                add(b + "post_ffw_norm.weight", [embd], scale: 0, ones: true)
            }
            if architecture == "qwen2" {
                add(b + "attn_q.bias", [q], scale: 0.1)
                add(b + "attn_k.bias", [kv], scale: 0.1)
                add(b + "attn_v.bias", [kv], scale: 0.1)
            }
        }
        for (name, dims) in extraTensors.sorted(by: { $0.key < $1.key }) { add(name, dims, scale: 0.1) }
        return w
    }

    func write() throws -> String { try writer().write(name: "tiny-\(architecture)") }
    func load() throws -> Model { try Model(path: write()) }
}

/// Test-only quantizers (round to nearest), producing ggml block bytes.
enum Quantize {
    static func half(_ f: Float) -> [UInt8] {
        let b = Float16(f).bitPattern.littleEndian
        return [UInt8(b & 0xFF), UInt8(b >> 8)]
    }

    static func encode(_ x: [Float], as type: GGMLType) -> [UInt8] {
        var out: [UInt8] = []
        switch type {
        case .f16: for v in x { out += half(v) }
        case .q8_0:
            for b in stride(from: 0, to: x.count, by: 32) {
                let blk = x[b ..< b + 32]
                let amax = blk.map(abs).max()!
                let d = amax / 127
                out += half(d)
                let dd = Float(Float16(d))
                for v in blk { out.append(UInt8(bitPattern: Int8(dd == 0 ? 0 : (v / dd).rounded()))) }
            }
        case .q4_1:
            for b in stride(from: 0, to: x.count, by: 32) {
                let blk = Array(x[b ..< b + 32])
                let mn = blk.min()!, mx = blk.max()!
                let d = (mx - mn) / 15
                out += half(d); out += half(mn)
                let dd = Float(Float16(d)), mm = Float(Float16(mn))
                func q(_ v: Float) -> UInt8 { dd == 0 ? 0 : UInt8(max(0, min(15, ((v - mm) / dd).rounded()))) }
                for j in 0 ..< 16 { out.append(q(blk[j]) | (q(blk[j + 16]) << 4)) }
            }
        default: fatalError("test quantizer for \(type) not written")
        }
        return out
    }
}
