import ArgumentParser
import Foundation
import Strata

struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Show the attention probabilities of every query head after a prompt: which earlier tokens each head looks at.",
        discussion: """
        The probabilities are the ones the attention kernels compute during the prompt's forward pass \
        (recorded as they are made, not recomputed): for each chosen layer and query head, one row per \
        prompt position, a distribution over that position and the ones before it.
        --json prints {"ids", "tokens", "layers": {"L": [head][query][key]}}; --svg draws a grid of \
        heatmaps (layers × heads) with the tokens on the axes. Without either, the terminal view lists, \
        for the last token, the earlier tokens each head attends to most.
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions

    @Option(help: "Layers, comma-separated (default: all).")
    var layer: String?
    @Option(help: "Only this query head (default: all).")
    var head: Int?
    @Flag(help: "Print JSON: {\"ids\", \"tokens\", \"layers\": {\"L\": [head][query][key]}}.")
    var json = false
    @Option(help: "Write an SVG grid of heatmaps (layers × heads) to this file.")
    var svg: String?

    func layerList() throws -> [Int]? {
        guard let layer else { return nil }
        let parts = try listItems(layer, option: "--layer")
        guard !parts.isEmpty else { throw ValidationError("--layer needs at least one layer number") }
        return try parts.map { part in
            guard let v = Int(part), v >= 0 else { throw ValidationError("--layer: '\(part)' is not a layer number") }
            return v
        }
    }

    func validate() throws {
        _ = try layerList()
        if let head, head < 0 { throw ValidationError("--head must be ≥ 0, got \(head)") }
    }

    struct Output: Encodable {
        let ids: [Int32]
        let tokens: [String]
        let heads: [Int]
        let layers: [String: [[[Float]]]]
    }

    func run() throws {
        let model = try modelOptions.loadModel()
        let c = model.config
        let (ids, tokenizer) = try promptOptions.resolve(model: model, verbose: modelOptions.verbose)
        guard !ids.isEmpty else { throw InferenceError.emptyPrompt }
        let layers = try layerList() ?? Array(0 ..< c.blockCount)
        if let bad = layers.first(where: { $0 >= c.blockCount }) {
            throw ValidationError("--layer \(bad): the model has layers 0…\(c.blockCount - 1)")
        }
        if let head, head >= c.headCount { throw ValidationError("--head \(head): the model has heads 0…\(c.headCount - 1)") }
        let T = ids.count
        guard T <= min(modelOptions.ctx ?? c.contextLength, c.contextLength) else {
            throw InferenceError.promptTooLong(tokens: T, contextLength: min(modelOptions.ctx ?? c.contextLength, c.contextLength))
        }
        // The capture holds layers × heads × T × T floats: refuse rather than allocate gigabytes.
        let bytes = Double(Set(layers).count) * Double(c.headCount) * Double(T) * Double(T) * 4
        guard bytes <= Double(1 << 30) else {
            throw ValidationError("attention maps for \(T) tokens × \(Set(layers).count) layers need \(String(format: "%.1f", bytes / Double(1 << 30))) GiB; choose fewer layers with --layer or a shorter prompt")
        }
        var options = modelOptions.contextOptions()
        options.contextLength = T
        options.maxBatchTokens = min(T, 1 << 16)
        let ctx = try InferenceContext(model: model, options: options)
        modelOptions.report(ctx)
        let capture = AttentionCapture(layers: layers, heads: c.headCount, rows: T, positions: ctx.contextLength)
        ctx.attentionCapture = capture
        var batch = Batch()
        batch.add(slot: 0, tokens: ids, logits: .last)
        try ctx.evaluate(batch)
        ctx.attentionCapture = nil

        let heads = head.map { [$0] } ?? Array(0 ..< c.headCount)
        let tokens = ids.map { tokenizer?.piece($0) ?? "#\($0)" }
        var maps: [Int: [[[Float]]]] = [:]
        for l in capture.layers {
            let all = capture.probabilities(layer: l)
            maps[l] = heads.map { h in all[h].map { Array($0.prefix(T)) } }
        }
        if let svg {
            try svgDocument(maps: maps, layers: capture.layers, heads: heads, tokens: tokens).write(toFile: svg, atomically: true, encoding: .utf8)
            if !json { printErr("wrote \(svg): \(capture.layers.count * heads.count) heatmaps (\(capture.layers.count) layer(s) × \(heads.count) head(s)), \(T) tokens") }
        }
        if json {
            print(jsonString(Output(ids: ids, tokens: tokens, heads: heads,
                                    layers: Dictionary(uniqueKeysWithValues: maps.map { (String($0.key), $0.value) }))))
        } else if svg == nil {
            printLastToken(maps: maps, layers: capture.layers, heads: heads, tokens: tokens)
        }
    }

    /// For the last token: each head's three most attended positions.
    func printLastToken(maps: [Int: [[[Float]]]], layers: [Int], heads: [Int], tokens: [String]) {
        let last = tokens.count - 1
        print("attention of the last token '\(visible(tokens[last]))' (position \(last)): the earlier tokens each head weighs most")
        for l in layers {
            for (i, h) in heads.enumerated() {
                let row = maps[l]![i][last]
                let best = row.indices.sorted { row[$0] > row[$1] }.prefix(3)
                let text = best.map { "'\(visible(tokens[$0]))'@\($0) \(String(format: "%.2f", row[$0]))" }.joined(separator: "  ")
                print(String(format: "  layer %2d head %2d  ", l, h) + text)
            }
        }
    }

    /// A grid of heatmaps, one per (layer, head): rows are queries, columns keys, darker = more.
    func svgDocument(maps: [Int: [[[Float]]]], layers: [Int], heads: [Int], tokens: [String]) -> String {
        let T = tokens.count
        let cell = max(2.0, min(16.0, 320.0 / Double(T)))
        let labels = T <= 48
        let margin = labels ? 90.0 : 10.0, title = 18.0, gap = 14.0
        let side = cell * Double(T)
        let boxW = margin + side + gap, boxH = title + margin + side + gap
        let width = boxW * Double(heads.count) + 10, height = boxH * Double(layers.count) + 10
        func esc(_ s: String) -> String { xmlEscaped(visible(s)) }
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" font-family=\"monospace\" font-size=\"9\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (li, l) in layers.enumerated() {
            for (hi, h) in heads.enumerated() {
                let x0 = 5 + boxW * Double(hi), y0 = 5 + boxH * Double(li)
                let gx = x0 + margin, gy = y0 + title + margin
                out += "<g class=\"heatmap\" data-layer=\"\(l)\" data-head=\"\(h)\">\n"
                out += "<text x=\"\(f(x0))\" y=\"\(f(y0 + 12))\" font-size=\"11\">layer \(l) head \(h)</text>\n"
                out += "<rect x=\"\(f(gx))\" y=\"\(f(gy))\" width=\"\(f(side))\" height=\"\(f(side))\" fill=\"none\" stroke=\"#ccc\"/>\n"
                let rows = maps[l]![hi]
                for q in 0 ..< T {
                    for k in 0 ... q where rows[q][k] > 0.005 {
                        out += "<rect x=\"\(f(gx + cell * Double(k)))\" y=\"\(f(gy + cell * Double(q)))\" width=\"\(f(cell))\" height=\"\(f(cell))\" fill=\"#08306b\" fill-opacity=\"\(String(format: "%.3f", rows[q][k]))\"/>\n"
                    }
                }
                if labels {
                    for (i, t) in tokens.enumerated() {
                        let y = gy + cell * (Double(i) + 0.75), x = gx + cell * (Double(i) + 0.75)
                        out += "<text x=\"\(f(gx - 3))\" y=\"\(f(y))\" text-anchor=\"end\">\(esc(String(t.prefix(12))))</text>\n"
                        out += "<text transform=\"translate(\(f(x)),\(f(gy - 3))) rotate(-60)\">\(esc(String(t.prefix(12))))</text>\n"
                    }
                }
                out += "</g>\n"
            }
        }
        return out + "</svg>\n"
    }
}
