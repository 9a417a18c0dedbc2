import Foundation
import Testing
@testable import Strata

/// Replays the fuzzers' committed inputs — the seeds, and every crash, leak or timeout a fuzzing
/// run saved under Tests/Fuzz/regressions once its bug is fixed — through the same entry points
/// the harnesses call (`FuzzTargets`), so `make test` keeps every bug the fuzzers found fixed.
@Suite struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path
    static let tokenizer = try! Tokenizer(gguf: GGUFFile(path: TinyModel().write()))

    static func inputs(_ harness: String) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        for dir in ["seeds", "regressions"] {
            let path = root + "/" + dir + "/" + harness
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            for n in names { out.append(("\(dir)/\(harness)/\(n)", Array(FileManager.default.contents(atPath: path + "/" + n) ?? Data()))) }
        }
        return out
    }

    /// Every committed input goes through its harness's entry point, whose checks (round trips,
    /// streaming ≡ whole decoding, no control tokens from message text, ids in range) trap on a
    /// violation — so this fails by crashing, as the fuzzer would. Tokenizer and chat-template
    /// inputs run against the tiny model's tokenizer and, when present, the default model's (the
    /// one `make fuzz` uses) and Gemma 3's (SentencePiece).
    @Test(arguments: ["GGUF", "Tokenizer", "ChatTemplate", "BatchInput", "Safetensors"])
    func committedInputsRunCleanly(harness: String) {
        let inputs = Self.inputs(harness)
        #expect(!inputs.filter { $0.0.hasPrefix("seeds/") }.isEmpty, "no seeds for \(harness) under \(Self.root)")
        let tokenizers = [Self.tokenizer] + (RealModel.tokenizer.map { [$0] } ?? []) + (GemmaTests.tokenizer.map { [$0] } ?? [])
        for (name, bytes) in inputs {
            for tok in tokenizers {
                let summary = bytes.withUnsafeBytes { raw in
                    switch harness {
                    case "GGUF": FuzzTargets.gguf(raw)
                    case "Tokenizer": FuzzTargets.tokenizer(raw, tokenizer: tok)
                    case "ChatTemplate": FuzzTargets.chatTemplate(raw, tokenizer: tok)
                    case "Safetensors": FuzzTargets.safetensors(raw)
                    default: FuzzTargets.batchInput(raw)
                    }
                }
                #expect(!summary.isEmpty, "\(name)")
            }
        }
    }

    /// Found by the GGUF fuzzer: one flipped byte made block_count 11,862,017 in a 12 KB file, and
    /// loading built a list of 107 million tensor names before noticing the first was missing (a
    /// 14 s timeout, 2 GB). Now the count is checked against the tensors the file holds.
    @Test func anImpossibleBlockCountFailsAtOnce() throws {
        let path = Self.root + "/regressions/GGUF/timeout-block-count-11862017"
        #expect(throws: ModelError.self) { try Model(path: path) }
        do { _ = try Model(path: path) } catch {
            #expect("\(error)".contains("block_count is 11862017, but the file holds only 11 tensors"), "\(error)")
        }
    }

    /// The seeds exercise what they are meant to: the GGUF seed loads as far as the weights, the
    /// batch seed has valid and invalid lines, every chat-template seed renders.
    @Test func seedsReachTheCodeTheyAreFor() {
        let gguf = Self.inputs("GGUF").filter { $0.0.hasPrefix("seeds/") }
        #expect(gguf.contains { $0.1.withUnsafeBytes { FuzzTargets.gguf($0) }.hasSuffix("config, plan, weights") })
        let batch = Self.inputs("BatchInput").first { $0.0.hasSuffix("mixed.jsonl") }
        #expect(batch.map { $0.1.withUnsafeBytes { FuzzTargets.batchInput($0) } } == "7 lines, 3 valid")
        for (name, bytes) in Self.inputs("ChatTemplate") where name.hasPrefix("seeds/") {
            #expect(bytes.withUnsafeBytes { FuzzTargets.chatTemplate($0, tokenizer: Self.tokenizer) }.hasSuffix("rendered"), "\(name)")
        }
        // The safetensors seed reads every tensor; cut at every byte of its header and at each
        // tensor boundary it fails with an error (or reads fewer tensors), never a trap.
        if let st = Self.inputs("Safetensors").first(where: { $0.0.hasPrefix("seeds/") })?.1 {
            #expect(st.withUnsafeBytes { FuzzTargets.safetensors($0) } == "parsed 4 tensors, read 3")
            for cut in 0 ..< st.count where cut < 400 || cut % 16 == 0 {
                #expect(!Array(st.prefix(cut)).withUnsafeBytes { FuzzTargets.safetensors($0) }.hasSuffix("read 3"), "cut at \(cut)")
            }
        }
        // A truncated copy of the GGUF seed fails with an error, not a trap.
        if let seed = gguf.first?.1 {
            for cut in [0, 3, 24, 100, seed.count / 2, seed.count - 1] {
                #expect(!Array(seed.prefix(cut)).withUnsafeBytes { FuzzTargets.gguf($0) }.contains("weights"), "cut at \(cut)")
            }
        }
    }
}
