import Foundation
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
    }
}
