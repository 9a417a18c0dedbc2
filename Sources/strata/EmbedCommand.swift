import ArgumentParser
import Foundation
import Strata

/// The encoder: --model (a sentence-transformers folder or a known name), else all-MiniLM-L6-v2,
/// fetched on first use.
struct EncoderOptions: ParsableArguments {
    @Option(name: .long, help: "A sentence-transformers folder or a model name (default: all-minilm-l6-v2, fetched on first use).")
    var model: String?
    @Option(help: "Kernels: simd, blas or naive.")
    var backend: Backend = .simd

    func load() throws -> SentenceEncoder {
        if let m = model, !FileManager.default.fileExists(atPath: m), KnownModel.named(m) == nil {
            throw ValidationError("no sentence-transformers model at '\(m)'; pass --model DIR or a name from `strata models`")
        }
        let folder = try ModelStore.resolve(model ?? "all-minilm-l6-v2") { printErr("model: " + $0) }
        guard FileManager.default.fileExists(atPath: folder + "/model.safetensors") else {
            throw ValidationError("no sentence-transformers model at '\(folder)' (model.safetensors missing); pass --model DIR or a name from `strata models`")
        }
        return try SentenceEncoder(folder: folder, backend: backend)
    }
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence embeddings from an encoder (all-MiniLM-L6-v2): one JSON line {\"text\", \"ids\", \"embedding\"} per input, in order.",
        discussion: "Texts come from the arguments, or from --input FILE.jsonl with one {\"text\": …} (optional \"id\") per line. Embeddings are mean-pooled and unit length."
    )
    @OptionGroup var encoder: EncoderOptions
    @Option(help: "JSONL input: one {\"text\": …} per line (optional \"id\", echoed back).")
    var input: String?
    @Option(help: "Sentences per batch.")
    var batch: Int = 32
    @Option(help: "Also draw the embeddings on a plane (PCA by LAPACK's ssyevd) as an SVG with labelled points.")
    var map: String?
    @Flag(help: "Print to stderr how long tokenizing and encoding took (texts/s, tokens/s), model loading and output excluded.")
    var timings = false
    @Argument(help: "Texts to embed.")
    var texts: [String] = []

    func validate() throws {
        if input == nil && texts.isEmpty { throw ValidationError("give texts or --input FILE.jsonl") }
        if input != nil && !texts.isEmpty { throw ValidationError("give texts or --input, not both") }
        if batch < 1 || batch > 4096 { throw ValidationError("--batch must be between 1 and 4096") }
    }

    func run() throws {
        var items: [(id: Any?, text: String)] = texts.map { (nil, $0) }
        if let input {
            let data = input == "-" ? try readStandardInput() : try Data(contentsOf: URL(fileURLWithPath: input))
            for (i, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
                if raw.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
                guard let o = (try? JSONSerialization.jsonObject(with: Data(raw))) as? [String: Any], let t = o["text"] as? String else {
                    throw ValidationError("\(input) line \(i + 1): expected {\"text\": …}")
                }
                items.append((o["id"], t))
            }
        }
        if map != nil && items.count < 3 { throw ValidationError("--map needs at least three texts") }
        let enc = try encoder.load()
        var all: [[Float]] = []
        var start = 0
        var seconds = 0.0, tokens = 0
        while start < items.count {
            let chunk = items[start ..< min(items.count, start + batch)]
            let t0 = DispatchTime.now().uptimeNanoseconds
            let embedded = try enc.embed(chunk.map(\.text))
            seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            tokens += embedded.reduce(0) { $0 + $1.ids.count }
            for (item, r) in zip(chunk, embedded) {
                if map != nil { all.append(r.embedding) }
                var o: [String: Any] = ["text": item.text, "ids": r.ids.map { Int($0) }, "embedding": r.embedding.map { Double($0) }]
                if let id = item.id { o["id"] = id }
                let d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
                emit(String(decoding: d, as: UTF8.self) + "\n")
            }
            start += batch
        }
        if timings {
            printErr(String(format: "embedded %d texts (%d tokens) in %.3f s: %.1f texts/s, %.0f tokens/s (batches of %d, backend %@)",
                            items.count, tokens, seconds, Double(items.count) / max(seconds, 1e-9), Double(tokens) / max(seconds, 1e-9),
                            batch, "\(encoder.backend)"))
        }
        if let map {
            let pca = try PCA.project(all, components: 2)
            try Self.svg(points: pca.points, labels: items.map(\.text), variances: pca.variances).write(toFile: map, atomically: true, encoding: .utf8)
            printErr("wrote \(map): \(all.count) points on the first two principal components")
        }
    }

    /// A scatter plot: one labelled circle per text (`data-x`/`data-y` hold the PCA coordinates).
    static func svg(points: [[Float]], labels: [String], variances: [Float]) -> String {
        let xs = points.map { $0[0] }, ys = points.map { $0[1] }
        let (x0, x1, y0, y1) = (xs.min()!, xs.max()!, ys.min()!, ys.max()!)
        let w = 900.0, h = 700.0, pad = 60.0
        func sx(_ x: Float) -> Double { pad + Double((x - x0) / max(x1 - x0, 1e-9)) * (w - 2 * pad - 200) }
        func sy(_ y: Float) -> Double { h - pad - Double((y - y0) / max(y1 - y0, 1e-9)) * (h - 2 * pad) }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(pad)\" y=\"24\" font-size=\"14\">Sentence embeddings, first two principal components (variance \(String(format: "%.4f", variances[0])), \(String(format: "%.4f", variances[1])))</text>\n"
        for (i, p) in points.enumerated() {
            let x = sx(p[0]), y = sy(p[1])
            out += "<g class=\"point\" data-x=\"\(p[0])\" data-y=\"\(p[1])\"><circle cx=\"\(String(format: "%.1f", x))\" cy=\"\(String(format: "%.1f", y))\" r=\"4\" fill=\"#08519c\"/>"
            out += "<text x=\"\(String(format: "%.1f", x + 6))\" y=\"\(String(format: "%.1f", y + 4))\">\(xmlEscaped(String(labels[i].prefix(40))))</text></g>\n"
        }
        return out + "</svg>\n"
    }
}

struct SimilarityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similarity",
        abstract: "The cosine-similarity matrix of texts' sentence embeddings."
    )
    @OptionGroup var encoder: EncoderOptions
    @Flag(help: "Print JSON: {\"texts\", \"similarity\": [[…]]}.")
    var json = false
    @Argument(help: "Two or more texts.")
    var texts: [String] = []

    func validate() throws { if texts.count < 2 { throw ValidationError("give at least two texts") } }

    func run() throws {
        let e = try encoder.load().embed(texts).map(\.embedding)
        let sim = e.map { a in e.map { b in Double(zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }) } }
        if json {
            let d = try JSONSerialization.data(withJSONObject: ["texts": texts, "similarity": sim], options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
            return
        }
        for (i, t) in texts.enumerated() {
            print(sim[i].map { String(format: "%6.3f", $0) }.joined(separator: " ") + "  " + visible(String(t.prefix(60))))
        }
    }
}
