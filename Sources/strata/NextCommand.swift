import ArgumentParser
import Foundation
import Strata

struct NextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next",
        abstract: "Show the next-token distribution: rank, token, id, probability, cumulative, logit.",
        discussion: "With --temperature/--top-k/--top-p/--min-p, also shows which tokens the sampler chain keeps and their renormalised probabilities. " + SamplingOptions.chainHelp
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions

    @Option(help: "How many tokens to list (0 = the whole vocabulary).")
    var top: Int = 10
    @Option(help: "Walk this many greedy steps, showing the table at each.")
    var steps: Int = 1
    @Option(help: "Temperature of the chain to show (omit to show the raw distribution only).")
    var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Top-k of the chain to show.")
    var topK: Int?
    @Option(name: .customLong("top-p"), help: "Top-p of the chain to show.")
    var topP: Float?
    @Option(name: .customLong("min-p"), help: "Min-p of the chain to show.")
    var minP: Float?
    @Flag(help: "Print JSON: {\"top\":[{\"id\",\"token\",\"logit\",\"prob\"}], …} (one object per step).")
    var json = false
    @Flag(help: "Logit lens: also show the prediction read after every block (through the final norm and the LM head), layer by layer.")
    var layers = false

    var chainRequested: Bool { temperature != nil || topK != nil || topP != nil || minP != nil }

    var chain: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature ?? 1
        p.topK = topK ?? 0
        p.topP = topP ?? 1
        p.minP = minP ?? 0
        return p
    }

    func validate() throws {
        if top < 0 { throw ValidationError("--top must be ≥ 0, got \(top)") }
        if steps < 1 || steps > 4096 { throw ValidationError("--steps must be between 1 and 4096, got \(steps)") }
        do { try chain.validate() } catch let e as SamplingError { throw ValidationError(e.description) }
    }

    struct Entry: Encodable { let id: Int32; let token: String?; let logit: Float; let prob: Double }
    struct Kept: Encodable { let id: Int32; let token: String?; let prob: Float }
    struct LayerOutput: Encodable { let layer: Int; let top: [Entry] }
    struct StepOutput: Encodable {
        let step: Int
        let prompt_ids: [Int32]
        let top: [Entry]
        let chain: [Kept]?
        let chosen: Int32
        let layers: [LayerOutput]?
    }

    /// The top entries of a logits row (softmax in Double, the row max subtracted).
    func topEntries(_ logits: [Float], tokenizer: Tokenizer?) -> (entries: [Entry], order: [Int]) {
        let maxl = logits.max()!
        var probs = logits.map { Foundation.exp(Double($0 - maxl)) }
        let sum = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= sum }
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let n = top == 0 ? order.count : min(top, order.count)
        return (order.prefix(n).map { Entry(id: Int32($0), token: tokenizer?.piece(Int32($0)), logit: logits[$0], prob: probs[$0]) }, order)
    }

    func run() throws {
        let model = try modelOptions.loadModel()
        var (ids, tokenizer) = try promptOptions.resolve(model: model, verbose: modelOptions.verbose)
        let ctx = try InferenceContext(model: model, options: modelOptions.contextOptions())
        modelOptions.report(ctx)
        guard ids.count + steps - 1 <= ctx.contextLength else {
            throw InferenceError.promptTooLong(tokens: ids.count + steps - 1, contextLength: ctx.contextLength)
        }
        let generator = Generator(model: model, tokenizer: tokenizer, context: ctx)
        let sampler = Sampler(parameters: chain, vocabularySize: ctx.vocabSize)
        let lens = layers ? LogitLens(config: model.config) : nil
        ctx.logitLens = lens
        for step in 0 ..< steps {
            try generator.prefill(ids, reuseCache: true)
            let logits = ctx.logits(row: 0)
            let (entries, order) = topEntries(logits, tokenizer: tokenizer)
            let perLayer = lens.map { lens in (0 ..< lens.layers).map { LayerOutput(layer: $0, top: topEntries(lens.logits(afterLayer: $0), tokenizer: tokenizer).entries) } }
            var kept: [Kept]?
            if chainRequested {
                kept = logits.withUnsafeBufferPointer { sampler.distribution($0) }.map { Kept(id: $0.id, token: tokenizer?.piece($0.id), prob: $0.p) }
            }
            let chosen = Int32(order[0])
            if json {
                print(jsonString(StepOutput(step: step, prompt_ids: ids, top: entries, chain: kept, chosen: chosen, layers: perLayer)))
            } else {
                if let perLayer { printLayers(perLayer) }
                printTable(step: step, entries: entries, kept: kept, tokenizer: tokenizer, ids: ids)
            }
            ids.append(chosen)
        }
    }

    func printTable(step: Int, entries: [Entry], kept: [Kept]?, tokenizer: Tokenizer?, ids: [Int32]) {
        if steps > 1 {
            let context = tokenizer.map { visible($0.decode(ids.suffix(12), special: true)) } ?? ids.suffix(12).map(String.init).joined(separator: ",")
            print("step \(step + 1): …\(context)")
        }
        let keptProb = Dictionary(uniqueKeysWithValues: (kept ?? []).map { ($0.id, $0.prob) })
        var header = "rank  token                 id      prob  bar                   cum     logit"
        if kept != nil { header += "   chain" }
        print(header)
        var cum = 0.0
        for (r, e) in entries.enumerated() {
            cum += e.prob
            let tok = "'" + visible(e.token ?? "#\(e.id)") + "'"
            let bar = String(repeating: "█", count: Int((e.prob * 20).rounded()))
            var line = String(format: "%4d  ", r + 1) + pad(tok, 20) + String(format: " %6d  %7.4f  ", e.id, e.prob)
                + pad(bar, 20) + String(format: "  %6.4f  %8.3f", cum, e.logit)
            if kept != nil { line += keptProb[e.id].map { String(format: "   %.4f", $0) } ?? "   —" }
            print(line)
        }
        if let kept { print("the chain keeps \(kept.count) token(s)\(kept.count > entries.count ? " (\(kept.count - entries.count) beyond this list)" : "")") }
        print("")
    }

    /// One line per block: its top tokens and their probabilities.
    func printLayers(_ layers: [LayerOutput]) {
        print("logit lens (each block's residual through the final norm and the LM head):")
        for l in layers {
            let tops = l.top.prefix(5).map { "'" + visible($0.token ?? "#\($0.id)") + "' " + String(format: "%.3f", $0.prob) }
            print(String(format: "  after block %3d  ", l.layer) + tops.joined(separator: "  "))
        }
        print("")
    }

    func pad(_ s: String, _ n: Int) -> String {
        let c = s.count
        return c >= n ? s : s + String(repeating: " ", count: n - c)
    }
}
