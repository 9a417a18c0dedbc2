import Foundation
import Testing
@testable import Strata

@Suite struct SamplerTests {
    /// Probabilities 0.5, 0.25, 0.15, 0.1 as logits (plus an arbitrary shift).
    let logits: [Float] = [0.5, 0.25, 0.15, 0.1].map { Float(log($0)) + 3 }

    func kept(_ configure: (inout SamplingParameters) -> Void, history: [Int32] = []) -> [Int32: Float] {
        var p = SamplingParameters()
        p.topK = 0; p.topP = 1; p.minP = 0; p.temperature = 1
        configure(&p)
        let s = Sampler(parameters: p, vocabularySize: logits.count)
        for t in history { s.accept(t) }
        let d = logits.withUnsafeBufferPointer { s.distribution($0) }
        return Dictionary(uniqueKeysWithValues: d.map { ($0.id, $0.p) })
    }

    func expectProbs(_ got: [Int32: Float], _ want: [Int32: Double], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Set(got.keys) == Set(want.keys), sourceLocation: sourceLocation)
        for (k, v) in want { #expect(abs(Double(got[k] ?? -1) - v) < 1e-6, "token \(k)", sourceLocation: sourceLocation) }
    }

    @Test func eachStageAlone() {
        expectProbs(kept { _ in }, [0: 0.5, 1: 0.25, 2: 0.15, 3: 0.1])
        expectProbs(kept { $0.topK = 2 }, [0: 2.0 / 3, 1: 1.0 / 3])
        expectProbs(kept { $0.topP = 0.7 }, [0: 2.0 / 3, 1: 1.0 / 3])
        expectProbs(kept { $0.topP = 0.5 }, [0: 1])
        expectProbs(kept { $0.minP = 0.25 }, [0: 0.5 / 0.9, 1: 0.25 / 0.9, 2: 0.15 / 0.9])
        let z = 0.25 + 0.0625 + 0.0225 + 0.01
        expectProbs(kept { $0.temperature = 0.5 }, [0: 0.25 / z, 1: 0.0625 / z, 2: 0.0225 / z, 3: 0.01 / z])
        expectProbs(kept { $0.temperature = 0 }, [0: 1])
    }

    @Test func chained() {
        // top-k 3 → (0.5, 0.25, 0.15)/0.9; top-p 0.8 keeps two; temperature 2 → ∝ √p.
        let a = 0.5.squareRoot(), b = 0.25.squareRoot()
        expectProbs(kept { $0.topK = 3; $0.topP = 0.8; $0.temperature = 2 }, [0: a / (a + b), 1: b / (a + b)])
    }

    @Test func penalties() {
        // repeat penalty 2 on tokens 0 and 3 (both logits positive here: divided by 2).
        let l = logits.map(Double.init)
        var e = [exp(l[0] / 2), exp(l[1]), exp(l[2]), exp(l[3] / 2)]
        var z = e.reduce(0, +)
        expectProbs(kept({ $0.repeatPenalty = 2 }, history: [0, 3, 3]), [0: e[0] / z, 1: e[1] / z, 2: e[2] / z, 3: e[3] / z])
        // frequency 0.5 per occurrence, presence 1 once: token 3 seen twice → −2, token 0 once → −1.5.
        e = [exp(l[0] - 1.5), exp(l[1]), exp(l[2]), exp(l[3] - 2)]
        z = e.reduce(0, +)
        expectProbs(kept({ $0.frequencyPenalty = 0.5; $0.presencePenalty = 1 }, history: [0, 3, 3]),
                    [0: e[0] / z, 1: e[1] / z, 2: e[2] / z, 3: e[3] / z])
        // Only the last N tokens count: with N = 1 only token 2 (the latest) is penalised.
        let lastOnly = kept({ $0.presencePenalty = 100; $0.repeatLastN = 1 }, history: [0, 1, 2])
        #expect(lastOnly[2]! < 1e-6 && abs(Double(lastOnly[0]!) - 0.5 / 0.85) < 1e-4)
        // Logit bias.
        expectProbs(kept { $0.logitBias = [0: -.infinity, 1: -.infinity, 2: -.infinity] }, [3: 1])
    }

    @Test func greedyIsArgmax() {
        var rng = TestRNG(seed: 5)
        for _ in 0 ..< 20 {
            let l = rng.floats(1000, scale: 10)
            let s = Sampler(parameters: .greedy, vocabularySize: 1000)
            let t = l.withUnsafeBufferPointer { s.sample($0) }
            #expect(Int(t) == l.indices.max { l[$0] < l[$1] }!)
        }
    }

    @Test func drawsMatchTheDistribution() {
        var p = SamplingParameters()
        p.topK = 0; p.topP = 1; p.minP = 0; p.temperature = 1; p.seed = 99
        let s = Sampler(parameters: p, vocabularySize: 4)
        var counts = [0, 0, 0, 0]
        let n = 20_000
        for _ in 0 ..< n { counts[Int(logits.withUnsafeBufferPointer { s.sample($0) })] += 1 }
        let expected = [0.5, 0.25, 0.15, 0.1].map { $0 * Double(n) }
        let chi2 = zip(counts, expected).map { (Double($0) - $1) * (Double($0) - $1) / $1 }.reduce(0, +)
        #expect(chi2 < 16.27, "χ² = \(chi2) with 3 degrees of freedom (p = 0.001 critical value 16.27); counts \(counts)")
    }

    @Test func seededRunsRepeat() {
        var p = SamplingParameters()
        p.seed = 1234; p.topK = 0; p.topP = 1; p.minP = 0
        func run() -> [Int32] {
            let s = Sampler(parameters: p, vocabularySize: 4)
            return (0 ..< 200).map { _ in logits.withUnsafeBufferPointer { s.sample($0) } }
        }
        let first = run()
        #expect(run() == first)
        p.seed = 1235
        let other = Sampler(parameters: p, vocabularySize: 4)
        #expect((0 ..< 200).map { _ in logits.withUnsafeBufferPointer { other.sample($0) } } != first)
    }

    @Test func invalidParametersAreRejected() {
        for bad: (inout SamplingParameters) -> Void in [{ $0.temperature = .nan }, { $0.temperature = -1 }, { $0.topP = 0 },
                                                        { $0.topP = 1.5 }, { $0.minP = -0.1 }, { $0.minP = 2 }, { $0.topK = -1 }] {
            var p = SamplingParameters()
            bad(&p)
            #expect(throws: SamplingError.self) { try p.validate() }
        }
        var g = GenerationParameters()
        g.maxTokens = 0
        #expect(throws: SamplingError.self) { try g.validate() }
    }
}

@Suite struct StopMatcherTests {
    @Test func stopStringSplitAcrossPiecesIsCaughtAndNotEmitted() {
        var m = StopMatcher(["END"])
        #expect(m.feed("hello E") == ("hello ", false))
        #expect(m.feed("N") == ("", false))
        #expect(m.feed("Dgame") == ("", true))
    }

    @Test func heldTextIsReleasedWhenItCannotBeAStop() {
        var m = StopMatcher(["<stop>", "xyz"])
        #expect(m.feed("a<st") == ("a", false))
        #expect(m.feed("uff") == ("<stuff", false))
        #expect(m.feed("x") == ("", false))
        #expect(m.flush() == "x")
    }

    @Test func earliestStopWins() {
        var m = StopMatcher(["bb", "a"])
        #expect(m.feed("xbba") == ("x", true))
    }
}
