import ArgumentParser
import Dispatch
import Foundation
import Strata

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Time every op of the forward pass, per layer and per op kind, for a prefill and decode steps.",
        discussion: "Reports total ms, share, mean per call and GFLOP/s per op kind, separately for prefill and decode, and the profiler's own overhead (the same run timed with the observer off and on). --trace writes a Chrome/Perfetto trace (ui.perfetto.dev, chrome://tracing); --svg a chart of time per layer stacked by op kind."
    )

    @OptionGroup var modelOptions: ModelOptionsNoBackend
    @Option(help: "simd, blas or naive; two of them comma-separated (side by side, with the logit difference between them); both = blas,naive.")
    var backend: String = "simd"
    @Argument(help: "Prompt text (default: -p pseudo-random tokens).")
    var prompt: String?
    @Option(name: .short, help: "Prompt tokens when no text is given.")
    var p: Int = 128
    @Option(name: .short, help: "Decode steps after the prefill.")
    var n: Int = 32
    @Option(help: "Sequences decoded together (each with its own prompt of the same length).")
    var batch: Int = 1
    @Flag(help: "Print the report as JSON.")
    var json = false
    @Option(help: "Write a Chrome trace JSON here.")
    var trace: String?
    @Option(help: "Write an SVG chart here.")
    var svg: String?

    /// The backends `validate` accepted.
    var backends: [Backend] { backend == "both" ? [.blas, .naive] : ((try? listCases(backend, option: "--backend")) ?? []) }

    func validate() throws {
        let names = backend == "both" ? ["blas", "naive"] : try listItems(backend, option: "--backend").map(String.init)
        guard (1 ... 2).contains(names.count), names.allSatisfy({ Backend(rawValue: $0) != nil }), Set(names).count == names.count else {
            throw ValidationError("--backend must be simd, blas, naive, two of them comma-separated, or both, got '\(backend)'")
        }
        if p < 1 || p > 1 << 16 { throw ValidationError("-p must be between 1 and 65536, got \(p)") }
        if n < 0 || n > 1 << 20 { throw ValidationError("-n must be between 0 and 1048576, got \(n)") }
        if batch < 1 || batch > 256 { throw ValidationError("--batch must be between 1 and 256") }
    }

    struct Run {
        let backend: Backend
        let profiler: Profiler
        let wallOff: Double       // seconds, observer off
        let wallOn: Double        // seconds, observer on
        let logits: [Float]       // after the prefill
    }

    struct JSONRun: Encodable {
        let backend: String
        let prompt_tokens: Int
        let decode_steps: Int
        let wall_ms: Double
        let wall_ms_without_profiler: Double
        let profiler_overhead: Double
        let accounted_ms: Double
        let accounted_share: Double
        let layers: Int
        let ops: [Profiler.Row]
        let per_layer: [String: [String: [String: Double]]]
    }

    struct JSONReport: Encodable {
        let model: String
        let machine: String
        let runs: [JSONRun]
        let max_logit_difference: Float?
    }

    func run() throws {
        if let warning = MachineInfo.openBLASWarning() { printErr(warning) }
        let model = try modelOptions.loadModel()
        let c = model.config
        var ids: [Int32]
        if let prompt {
            ids = try Tokenizer(gguf: model.gguf).encode(try readText(prompt), special: true, addSpecial: true)
        } else {
            var g = Xoshiro256(seed: 5)
            ids = (0 ..< p).map { _ in Int32(g.next() % UInt64(c.vocabSize)) }
        }
        guard !ids.isEmpty else { throw InferenceError.emptyPrompt }
        let ctxLen = ids.count + n + 1
        var runs: [Run] = []
        for b in backends {
            let B = batch
            let ctx = try InferenceContext(model: model, options: ContextOptions(backend: b, threads: modelOptions.threads, contextLength: ctxLen,
                                                                                 slots: B, maxBatchTokens: max(ids.count * B, 1), maxLogitsRows: B,
                                                                                 activations: modelOptions.activations, cacheType: modelOptions.cacheType))
            let samplers = (0 ..< B).map { _ in Sampler(parameters: .greedy, vocabularySize: c.vocabSize) }
            // Sequence s > 0 gets the prompt rotated by s tokens, so the sequences differ.
            let prompts = (0 ..< B).map { s in Array(ids[(s % ids.count)...] + ids[..<(s % ids.count)]) }
            // One pass of the workload: prefill, then n greedy decode steps (sampling timed as an op).
            func workload(_ profiler: Profiler?) throws -> Double {
                ctx.resetAll()
                var batch = Batch(capacity: ids.count * B)
                let t0 = DispatchTime.now().uptimeNanoseconds
                profiler?.phase = .prefill
                var rows = prompts.enumerated().map { batch.add(slot: $0.offset, tokens: $0.element, logits: .last) }
                try ctx.evaluate(batch)
                var tokens = [Int32](repeating: 0, count: B)
                func sample() {
                    let s0 = DispatchTime.now().uptimeNanoseconds
                    for s in 0 ..< B { tokens[s] = ctx.withLogits(row: rows[s]) { samplers[s].sample($0) } }
                    if let profiler { profiler.record(kind: .sampling, layer: nil, rows: B, pairs: 0, start: s0, duration: DispatchTime.now().uptimeNanoseconds - s0) }
                }
                sample()
                profiler?.phase = .decode
                for _ in 0 ..< n {
                    batch.removeAll()
                    for s in 0 ..< B { rows[s] = batch.add(slot: s, token: tokens[s]) }
                    try ctx.evaluate(batch)
                    sample()
                }
                return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            }
            printErr("profile: \(b): warm-up …")
            _ = try workload(nil)
            let off = try workload(nil)
            let profiler = Profiler()
            ctx.observer = profiler
            let on = try workload(profiler)
            ctx.observer = nil
            ctx.resetAll()
            try ctx.prefill(ids)
            runs.append(Run(backend: b, profiler: profiler, wallOff: off, wallOn: on, logits: ctx.logits(row: 0)))
        }
        let diff: Float? = runs.count == 2 ? zip(runs[0].logits, runs[1].logits).map { abs($0 - $1) }.max() : nil

        if let trace { try runs[0].profiler.chromeTrace(label: "strata \(runs[0].backend)").write(to: URL(fileURLWithPath: trace)) }
        if let svg {
            let title = "Strata profile: \(c.architecture.name), \(ids.count)-token prefill + \(n) decode steps, \(runs[0].backend)"
            try runs[0].profiler.svg(title: title, layers: c.blockCount).write(toFile: svg, atomically: true, encoding: .utf8)
        }
        if json {
            let out = runs.map { r -> JSONRun in
                let accounted = Double(r.profiler.totalNanoseconds) / 1e6
                var perLayer: [String: [String: [String: Double]]] = [:]
                for phase in Profiler.Phase.allCases {
                    for (l, kinds) in r.profiler.perLayer(phase) {
                        let name = l < 0 ? "other" : "blk.\(l)"
                        perLayer[phase.rawValue, default: [:]][name] = Dictionary(uniqueKeysWithValues: kinds.map { ($0.key.rawValue, $0.value) })
                    }
                }
                return JSONRun(backend: r.backend.rawValue, prompt_tokens: ids.count, decode_steps: n, wall_ms: r.wallOn * 1000,
                               wall_ms_without_profiler: r.wallOff * 1000, profiler_overhead: (r.wallOn - r.wallOff) / r.wallOff,
                               accounted_ms: accounted, accounted_share: accounted / (r.wallOn * 1000), layers: c.blockCount,
                               ops: r.profiler.summary(config: c), per_layer: perLayer)
            }
            print(jsonString(JSONReport(model: model.path, machine: "\(MachineInfo.cpuModel), \(MachineInfo.cores) cores", runs: out, max_logit_difference: diff)))
            return
        }
        print("model: \(model.path)\nprefill \(batch) × \(ids.count) tokens, then \(n) decode steps of \(batch) sequence(s); machine: \(MachineInfo.cpuModel), \(MachineInfo.cores) cores; OpenBLAS core \(MachineInfo.openBLASCore)\n")
        for r in runs {
            let accounted = Double(r.profiler.totalNanoseconds) / 1e9
            print(String(format: "%@: wall %.1f ms (%.1f ms without the profiler: overhead %+.1f%%); named ops account for %.1f%%",
                         r.backend.rawValue, r.wallOn * 1000, r.wallOff * 1000, (r.wallOn - r.wallOff) / r.wallOff * 100, accounted / r.wallOn * 100))
        }
        if let diff { print(String(format: "max |logit(%@) − logit(%@)| after the prefill: %.2e", runs[0].backend.rawValue, runs[1].backend.rawValue, diff)) }
        for phase in Profiler.Phase.allCases {
            let tables = runs.map { Dictionary(uniqueKeysWithValues: $0.profiler.summary(config: c).filter { $0.phase == phase }.map { ($0.op, $0) }) }
            let order = runs[0].profiler.summary(config: c).filter { $0.phase == phase }.map(\.op)
            guard !order.isEmpty else { continue }
            print("\n\(phase.rawValue)")
            var header = "op              "
            for r in runs { header += "  " + pad("\(r.backend.rawValue) ms", 10) + "  share                   mean µs   GFLOP/s" }
            if runs.count == 2 { header += "  \(runs[1].backend)/\(runs[0].backend)" }
            print(header)
            for op in order {
                var line = pad(op, 16)
                for t in tables {
                    guard let row = t[op] else { line += String(repeating: " ", count: 70); continue }
                    let bar = String(repeating: "█", count: Int((row.share * 20).rounded()))
                    line += String(format: "  %10.2f  %5.1f%% ", row.totalMs, row.share * 100) + pad(bar, 16)
                        + String(format: " %9.1f  %8@", row.meanUs, row.gflops.map { String(format: "%.1f", $0) } ?? "")
                }
                if tables.count == 2, let a = tables[0][op], let b = tables[1][op], a.totalMs > 0 {
                    line += String(format: "  %8.2f×", b.totalMs / a.totalMs)
                }
                print(line)
            }
        }
        if let trace { print("\ntrace: \(trace)") }
        if let svg { print("svg: \(svg)") }
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}

/// Model options without --backend (profile takes two).
struct ModelOptionsNoBackend: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model (default: $STRATA_MODEL, else the default model).")
    var model: String?
    @Option(help: "Kernel threads: Strata's pool for simd, OpenBLAS's for blas (default: all cores).")
    var threads: Int?

    @Option(help: "Weights: native (the file's types) or f32 (dequantized at load).")
    var weights: WeightsMode = .native
    @Option(help: "simd with native weights: f32 (exact), q24 (24-bit blocks, integer kernels) or q8 activations (8-bit blocks); by default q24 with AVX-512 VNNI, else f32.")
    var activations: ActivationMode = .standard
    @Option(name: .customLong("cache-type"), help: "KV cache element type: f32 or f16.")
    var cacheType: KVCacheType = .f32

    func validate() throws { if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024, got \(t)") } }

    func loadModel() throws -> Model { try Model(path: try Model.resolvePath(model), weights: weights) }
}
