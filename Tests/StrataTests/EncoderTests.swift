import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Strata

/// all-MiniLM-L6-v2 (fetched by `make minilm`) against sentence-transformers' embeddings
/// (../shared/fixtures/minilm): WordPiece ids exact, cosine ≥ 0.99999 on every backend, and a
/// ragged batch giving each sentence what it gets alone.
@Suite(.serialized) struct EncoderTests {
    static let folder: String = {
        let env = ProcessInfo.processInfo.environment
        if let f = env["STRATA_MINILM"], !f.isEmpty { return f }
        let home = env["STRATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache/strata")
        return home + "/models/all-minilm-l6-v2"
    }()
    nonisolated(unsafe) static let cases: [[String: Any]] = {
        let path = (RealModel.fixtures as NSString).deletingLastPathComponent + "/minilm/embeddings.jsonl"
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }()

    func encoder(_ backend: Backend) throws -> SentenceEncoder {
        guard FileManager.default.fileExists(atPath: Self.folder + "/model.safetensors") else {
            throw RealModelTests.FixtureError("all-MiniLM-L6-v2 not found at \(Self.folder): run `make minilm`")
        }
        return try SentenceEncoder(folder: Self.folder, backend: backend)
    }

    static func cosine(_ a: [Float], _ b: [Double]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) { dot += Double(x) * y; na += Double(x) * Double(x); nb += y * y }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    @Test func wordPieceIdsMatch() throws {
        let enc = try encoder(.naive)
        #expect(Self.cases.count >= 5)
        for c in Self.cases {
            #expect(enc.encode(c["text"] as! String) == RealModel.ids(c["ids"]), "\(c["text"]!)")
        }
    }

    /// Every Unicode scalar c, in "A" + c + "b " + c + "Z" (inside a word, alone, next to letters
    /// that are lower-cased), against the `tokenizers` package (the Rust tokenizer
    /// sentence-transformers runs; in the test venv): whitespace, control characters, punctuation,
    /// CJK, accent stripping and lower-casing as it has them, down to its Unicode 8.0 tables.
    @Test func wordPieceAgreesWithTokenizersOnEveryCodePoint() throws {
        guard let python = ProcessInfo.processInfo.environment["STRATA_PYTHON"], !python.isEmpty else {
            Issue.record("STRATA_PYTHON is not set: run through `make test`, which makes a venv with the tokenizers package")
            return
        }
        guard FileManager.default.fileExists(atPath: Self.folder + "/tokenizer.json") else {
            throw RealModelTests.FixtureError("all-MiniLM-L6-v2 not found at \(Self.folder): run `make minilm`")
        }
        let tokenizer = try WordPieceTokenizer(folder: Self.folder)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Support/wordpiece_reference.py").path
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [script, Self.folder + "/tokenizer.json"]
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "wordpiece_reference.py failed")
        var checked = 0, differ: [String] = []
        for line in data.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            let scalar = try #require(UInt32(fields[0], radix: 16).flatMap(Unicode.Scalar.init), "bad line \(fields)")
            let want = fields.dropFirst().map { Int32($0)! }
            let c = String(Character(scalar))
            let got = tokenizer.encode("A" + c + "b " + c + "Z")
            if got != want { differ.append("U+\(fields[0]): \(got) != \(want)") }
            checked += 1
        }
        #expect(checked == 0x110000 - 0x800, "every scalar but the surrogates")
        #expect(differ.isEmpty, "\(differ.count) differ from tokenizers, e.g. \(differ.prefix(12))")
    }

    @Test(arguments: Backend.allCases)
    func embeddingsMatchSentenceTransformers(backend: Backend) throws {
        let enc = try encoder(backend)
        let texts = Self.cases.map { $0["text"] as! String }
        let batched = try enc.embed(texts)
        for (i, c) in Self.cases.enumerated() {
            let want = c["embedding"] as! [Double]
            #expect(batched[i].embedding.count == want.count)
            let cos = Self.cosine(batched[i].embedding, want)
            #expect(cos >= 0.99999, "\(backend): cosine \(cos) for \(texts[i])")
            // Alone, the same sentence gets the same vector: bit for bit on simd and naive.
            let alone = try enc.embed([texts[i]])[0].embedding
            if backend != .blas { #expect(alone == batched[i].embedding, "\(backend): batched vs alone for \(texts[i])") }
        }
    }

    /// `strata embed --input`: one line per input in order, ids as given back, nothing else on
    /// stdout; `strata similarity` ranks a paraphrase above an unrelated sentence.
    @Test func embedAndSimilarityCommands() throws {
        _ = try encoder(.naive)
        let lines = Self.cases.enumerated().map { i, c in
            String(decoding: try! JSONSerialization.data(withJSONObject: ["id": i, "text": c["text"]!]), as: UTF8.self)
        }
        let input = try TempFiles.write(Array((lines.joined(separator: "\n") + "\n").utf8), name: "embed.jsonl")
        let r = try CLI.run(["embed", "--model", Self.folder, "--input", input, "--batch", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = r.stdout.split(separator: "\n").map { try! CLI.json(String($0)) }
        #expect(out.count == Self.cases.count)
        for (i, o) in out.enumerated() {
            #expect(o["id"] as? Int == i && RealModel.ids(o["ids"]) == RealModel.ids(Self.cases[i]["ids"]))
            let e = (o["embedding"] as! [Double]).map { Float($0) }
            #expect(Self.cosine(e, Self.cases[i]["embedding"] as! [Double]) >= 0.99999)
        }
        let sim = try CLI.json(try CLI.run(["similarity", "--model", Self.folder, "--json", "The cat sits on the mat.",
                                            "A kitten rests on a rug.", "Stock markets fell sharply today."]).stdout)
        let m = sim["similarity"] as! [[Double]]
        #expect(abs(m[0][0] - 1) < 1e-5 && m[0][1] > m[0][2] + 0.3 && m[1][0] == m[0][1])
        #expect(try CLI.run(["embed", "--model", "/nonexistent", "x"]).status == 2)
        #expect(try CLI.run(["embed", "--model", Self.folder, "--map", TempFiles.directory + "/two.svg", "a", "b"]).status == 2)
        #expect(try CLI.run(["embed", "--model", Self.folder]).status == 2)
    }

    /// PCA against an independent computation: the leading eigenvector of the covariance by power
    /// iteration (plain Swift, Double) on points with a known dominant direction.
    @Test func pcaMatchesPowerIteration() throws {
        var rng = TestRNG(seed: 11)
        let dir: [Double] = [3, -1, 2, 0.5].map { $0 / (9.0 + 1 + 4 + 0.25).squareRoot() }
        let rows: [[Float]] = (0 ..< 60).map { _ in
            let t = Double(rng.float(3)), noise = rng.floats(4, scale: 0.2)
            return (0 ..< 4).map { Float(t * dir[$0]) + noise[$0] }
        }
        let r = try PCA.project(rows, components: 2)
        // Power iteration on the covariance.
        let n = Double(rows.count)
        let mean = (0 ..< 4).map { j in rows.reduce(0.0) { $0 + Double($1[j]) } / n }
        var cov = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
        for row in rows { for i in 0 ..< 4 { for j in 0 ..< 4 { cov[i][j] += (Double(row[i]) - mean[i]) * (Double(row[j]) - mean[j]) / (n - 1) } } }
        var v: [Double] = [1, 1, 1, 1]
        for _ in 0 ..< 500 {
            let w = (0 ..< 4).map { i in (0 ..< 4).reduce(0.0) { $0 + cov[i][$1] * v[$1] } }
            let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = w.map { $0 / norm }
        }
        let lambda = (0 ..< 4).reduce(0.0) { acc, i in acc + v[i] * (0 ..< 4).reduce(0.0) { $0 + cov[i][$1] * v[$1] } }
        let cos = abs(zip(r.components[0], v).reduce(0.0) { $0 + Double($1.0) * $1.1 })
        #expect(cos > 0.9999, "first component vs power iteration: |cos| \(cos)")
        #expect(abs(Double(r.variances[0]) - lambda) < 1e-3 * lambda, "variance \(r.variances[0]) vs \(lambda)")
        #expect(r.variances[0] >= r.variances[1] && abs(zip(r.components[0], r.components[1]).reduce(Float(0)) { $0 + $1.0 * $1.1 }) < 1e-4)
        // Projections are the centred rows dotted with the components.
        for (i, row) in rows.enumerated() {
            let p = (0 ..< 4).reduce(0.0) { $0 + (Double(row[$1]) - mean[$1]) * Double(r.components[0][$1]) }
            #expect(abs(Double(r.points[i][0]) - p) < 1e-4)
        }
    }

    /// `strata embed --map` on 30 sentences from three topics: on the plane of the first two
    /// principal components every sentence lies nearer its own topic's centroid than the others'.
    @Test func topicsFormSeparateClustersOnTheMap() throws {
        _ = try encoder(.naive)
        let topics = [
            ["Whisk the eggs with sugar until pale.", "Simmer the tomato sauce for twenty minutes.", "Knead the bread dough and let it rise.",
             "Season the soup with salt and pepper.", "Bake the cake at 180 degrees.", "Chop the onions and fry them in butter.",
             "Marinate the chicken overnight in yogurt.", "Boil the pasta until it is al dente.", "Roast the vegetables with olive oil.",
             "Stir the risotto slowly while adding stock."],
            ["The telescope captured light from a distant galaxy.", "Astronauts docked with the space station.", "A comet will pass close to Earth next year.",
             "The rover drilled into the Martian soil.", "Jupiter has dozens of moons.", "The rocket launched its satellite into orbit.",
             "Black holes bend light around them.", "The probe flew past Saturn's rings.", "Astronomers found a new exoplanet.",
             "The solar eclipse darkened the sky at noon."],
            ["The striker scored in the final minute.", "The goalkeeper saved a penalty.", "The team won the league on goal difference.",
             "The referee showed a red card.", "Fans sang in the stadium all match long.", "The coach changed the formation at half time.",
             "The midfielder passed the ball forward.", "The match ended in a draw.", "The club signed a new defender.",
             "The cup final went to extra time."],
        ]
        let texts = topics.flatMap { $0 }
        let input = try TempFiles.write(Array((texts.map { "{\"text\": \"\($0)\"}" }.joined(separator: "\n") + "\n").utf8), name: "topics.jsonl")
        let svg = TempFiles.directory + "/map-\(UUID()).svg"
        let r = try CLI.run(["embed", "--model", Self.folder, "--input", input, "--map", svg])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == 30)
        let doc = try XMLDocument(contentsOf: URL(fileURLWithPath: svg))
        #expect(doc.rootElement()?.name == "svg")
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        let points: [(Double, Double)] = text.components(separatedBy: "<g class=\"point\" data-x=\"").dropFirst().compactMap { part in
            let fields = part.components(separatedBy: "\"")   // x, " data-y=", y, …
            guard fields.count > 2, let x = Double(fields[0]), let y = Double(fields[2]) else { return nil }
            return (x, y)
        }
        #expect(points.count == 30)
        let centroids = (0 ..< 3).map { t in
            let ps = points[(10 * t) ..< (10 * t + 10)]
            return (ps.reduce(0) { $0 + $1.0 } / 10, ps.reduce(0) { $0 + $1.1 } / 10)
        }
        for (i, p) in points.enumerated() {
            let d = centroids.map { ($0.0 - p.0) * ($0.0 - p.0) + ($0.1 - p.1) * ($0.1 - p.1) }
            #expect(d.indices.min { d[$0] < d[$1] } == i / 10, "\(texts[i]) is nearer another topic's centroid")
        }
    }
}
