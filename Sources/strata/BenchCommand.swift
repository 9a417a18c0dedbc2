import ArgumentParser
import Foundation
import Strata

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prefill (pp), generation (tg) and batched decoding throughput over a matrix of settings.",
        discussion: """
        Tests: 'pp N' prefills N tokens in one pass; 'tg N' generates N tokens one at a time from an empty context; \
        'batch B' decodes B sequences together (prompts of --batch-prompt tokens, -n new tokens each) and reports decode \
        tokens/s (prefill and end-to-end rates in the JSON and CSV). Each is run once to warm up, then -r times; \
        the report gives mean ± standard deviation. With the naive backend in the list, each other backend's speed-up \
        over it is given for every test. Naive kernels are single-threaded, so they run once per test whatever --threads says.
        """
    )

    @Option(name: .long, help: "Path to a GGUF model (default: $STRATA_MODEL, else the default model).")
    var model: String?
    @Option(help: "Backends, comma-separated: simd, blas, naive.")
    var backend: String = "simd,blas,naive"
    @Option(help: "Weights, comma-separated: native (the file's types), f32 (dequantized at load).")
    var weights: String = "native"
    @Option(help: "Activations for simd with native weights, comma-separated: f32 (exact), q24 (24-bit blocks, integer kernels), q8 (8-bit blocks); by default q24 with AVX-512 VNNI, else f32.")
    var activations: String = ActivationMode.standard.rawValue
    @Option(name: .customLong("cache-type"), help: "KV cache element type for every configuration: f32 or f16.")
    var cacheType: KVCacheType = .f32
    @Option(help: "Kernel thread counts, comma-separated (Strata's pool for simd, OpenBLAS's for blas).")
    var threads: String = "1,2"
    @Option(help: "Batch sizes for the batch test, comma-separated (0 or empty: no batch test).")
    var batch: String = "1,4,16"
    @Option(name: .customLong("batch-prompt"), help: "Prompt tokens per sequence in the batch test.")
    var batchPrompt: Int = 128
    @Option(name: .short, help: "Prompt sizes for pp tests, comma-separated.")
    var p: String = "128,512"
    @Option(name: .short, help: "Generated tokens for tg and batch tests, comma-separated.")
    var n: String = "128"
    @Option(name: .short, help: "Repetitions after the warm-up.")
    var r: Int = 3
    @Option(help: "Output format: md, json or csv.")
    var format: String = "md"

    func list(_ s: String, _ name: String) throws -> [Int] {
        try listItems(s, option: name).map { t in
            guard let v = Int(t), v >= 0 else { throw ValidationError("\(name): '\(t)' is not a non-negative integer") }
            return v
        }
    }

    var backends: [Backend] { get throws { try listCases(backend, option: "--backend") } }
    var weightModes: [WeightsMode] { get throws { try listCases(weights, option: "--weights") } }
    var activationModes: [ActivationMode] { get throws { try listCases(activations, option: "--activations") } }

    func validate() throws {
        if try backends.isEmpty { throw ValidationError("--backend needs at least one of simd, blas, naive") }
        if try weightModes.isEmpty { throw ValidationError("--weights needs at least one of native, f32") }
        if try activationModes.isEmpty { throw ValidationError("--activations needs at least one of f32, q24, q8") }
        // An empty -p, -n or --batch leaves those tests out; no thread count leaves nothing to run.
        let threadCounts = try list(threads, "--threads")
        if threadCounts.isEmpty { throw ValidationError("--threads needs at least one value") }
        if threadCounts.contains(where: { $0 < 1 || $0 > 1024 }) { throw ValidationError("--threads values must be between 1 and 1024") }
        if try list(p, "-p").contains(where: { $0 > 1 << 16 }) || list(n, "-n").contains(where: { $0 > 1 << 20 }) || list(batch, "--batch").contains(where: { $0 > 4096 }) || batchPrompt > 1 << 16 {
            throw ValidationError("-p and --batch-prompt must be at most 65536, -n at most 1048576, --batch at most 4096")
        }
        if r < 1 { throw ValidationError("-r must be ≥ 1, got \(r)") }
        if !["md", "json", "csv"].contains(format) { throw ValidationError("--format must be md, json or csv, got '\(format)'") }
        if batchPrompt < 1 { throw ValidationError("--batch-prompt must be ≥ 1") }
        if try !list(p, "-p").contains(where: { $0 > 0 }) && !list(n, "-n").contains(where: { $0 > 0 }) {
            throw ValidationError("nothing to run: -p and -n are all 0 (give a prompt size or a number of tokens to generate)")
        }
    }

    struct Record: Encodable {
        let test: String
        let backend: String
        let weights: String
        let activations: String
        let cache_type: String
        let threads: Int
        let n_prompt: Int
        let n_gen: Int
        let batch: Int
        let repetitions: Int
        let tokens_per_second: Double
        let sd: Double
        let samples: [Double]
        var prefill_tokens_per_second: Double?
        var end_to_end_tokens_per_second: Double?
        var blas_naive_speedup: Double?
        /// This backend's tokens/s over the naive backend's on the same test (any backend but naive).
        var speedup_vs_naive: Double?
        /// Peak resident set (VmHWM) while this configuration ran, model and context included.
        var peak_rss_bytes: Int?
    }

    struct Report: Encodable {
        let date: String
        let machine: String
        let cores: Int
        let memory: String
        let openblas_coretype: String
        let openblas_core: String
        let build: String
        let model: String
        let model_type: String
        let results: [Record]
    }

    func run() throws {
        if try backends.contains(.blas), let warning = MachineInfo.openBLASWarning() { printErr(warning) }
        let path = try Model.resolvePath(model)
        var tests: [BenchTest] = []
        for x in try list(p, "-p") where x > 0 { tests.append(.prompt(x)) }
        for x in try list(n, "-n") where x > 0 { tests.append(.generate(x)) }
        for b in try list(batch, "--batch") where b > 0 {
            for x in try list(n, "-n") where x > 0 { tests.append(.batch(sequences: b, prompt: batchPrompt, generate: x)) }
        }
        var records: [Record] = []
        var lastModel: Model?
        for mode in try weightModes {
          lastModel = nil   // one model in memory at a time
          MachineInfo.resetPeakRSS()
          let m = try Model(path: path, weights: mode)
          lastModel = m
          for backend in try backends {
           // Activations matter only for simd on native weights.
           for act in backend == .simd && mode == .native ? try activationModes : [.f32] {
            let threadList = backend == .naive ? [1] : try list(threads, "--threads")
            for t in threadList {
                for test in tests {
                    MachineInfo.resetPeakRSS()
                    let ctx = try InferenceContext(model: m, options: Workloads.contextOptions(for: test, backend: backend, threads: t, activations: act, cacheType: cacheType))
                    printErr("bench: \(test) \(backend) weights=\(mode) activations=\(act) threads=\(t) …")
                    _ = try Workloads.run(test, context: ctx, seed: 999)   // warm-up
                    var samples: [WorkloadResult] = []
                    for i in 0 ..< r { samples.append(try Workloads.run(test, context: ctx, seed: UInt64(i + 1))) }
                    let (mean, sd) = meanAndSD(samples.map(\.tokensPerSecond))
                    let (name, nPrompt, nGen, batchSize): (String, Int, Int, Int) = switch test {
                    case let .prompt(x): ("pp\(x)", x, 0, 1)
                    case let .generate(x): ("tg\(x)", 0, x, 1)
                    case let .batch(b, pp, g): ("batch\(b)", pp, g, b)
                    }
                    var rec = Record(test: name, backend: backend.rawValue, weights: mode.rawValue, activations: act.rawValue, cache_type: cacheType.rawValue, threads: t, n_prompt: nPrompt, n_gen: nGen,
                                     batch: batchSize, repetitions: r, tokens_per_second: mean, sd: sd, samples: samples.map(\.tokensPerSecond))
                    rec.peak_rss_bytes = MachineInfo.peakRSS
                    if case .batch = test {
                        rec.prefill_tokens_per_second = meanAndSD(samples.compactMap(\.prefillTokensPerSecond)).mean
                        rec.end_to_end_tokens_per_second = meanAndSD(samples.compactMap(\.endToEndTokensPerSecond)).mean
                    }
                    records.append(rec)
                }
            }
           }
          }
        }
        guard let m = lastModel else { throw ValidationError("--weights: nothing to run") }
        // Speed-up over naive for each record with a naive counterpart (blas_naive_speedup: the
        // same for BLAS records, the field's name from before the simd backend).
        for i in records.indices where records[i].backend != "naive" {
            if let naive = records.first(where: { $0.backend == "naive" && $0.weights == records[i].weights && $0.activations == "f32" && $0.test == records[i].test && $0.n_gen == records[i].n_gen && $0.n_prompt == records[i].n_prompt }) {
                records[i].speedup_vs_naive = records[i].tokens_per_second / naive.tokens_per_second
                if records[i].backend == "blas" { records[i].blas_naive_speedup = records[i].speedup_vs_naive }
            }
        }
        let fileType = (m.gguf.metadata["general.file_type"]?.intValue).map { "file_type \($0)" } ?? "unknown"
        let weightTypes = Set(m.gguf.tensors.map { "\($0.type)" }).sorted().joined(separator: "/")
        let report = Report(date: ISO8601DateFormatter().string(from: Date()), machine: MachineInfo.cpuModel, cores: MachineInfo.cores,
                            memory: MachineInfo.memory, openblas_coretype: MachineInfo.openBLASCoreType, openblas_core: MachineInfo.openBLASCore, build: MachineInfo.build,
                            model: path, model_type: "\(m.config.architecture.name) \(m.weights.parameterCount / 1_000_000)M, \(weightTypes) (\(fileType))",
                            results: records)
        switch format {
        case "json": print(jsonString(report))
        case "csv":
            print("test,backend,weights,activations,cache_type,threads,n_prompt,n_gen,batch,reps,tokens_per_second,sd,prefill_tokens_per_second,end_to_end_tokens_per_second,speedup_vs_naive,peak_rss_bytes")
            for x in records {
                print([x.test, x.backend, x.weights, x.activations, x.cache_type, "\(x.threads)", "\(x.n_prompt)", "\(x.n_gen)", "\(x.batch)", "\(x.repetitions)",
                       String(format: "%.2f", x.tokens_per_second), String(format: "%.2f", x.sd),
                       x.prefill_tokens_per_second.map { String(format: "%.2f", $0) } ?? "",
                       x.end_to_end_tokens_per_second.map { String(format: "%.2f", $0) } ?? "",
                       x.speedup_vs_naive.map { String(format: "%.2f", $0) } ?? "", x.peak_rss_bytes.map { "\($0)" } ?? ""].joined(separator: ","))
            }
        default:
            print("machine: \(report.machine), \(report.cores) cores, \(report.memory); OpenBLAS core \(report.openblas_core) (OPENBLAS_CORETYPE=\(report.openblas_coretype)); build: \(report.build)")
            print("model: \(report.model) (\(report.model_type))")
            print("date: \(report.date)\n")
            print("| test | backend | weights | activations | cache | threads | tokens/s | × naive | peak RSS |")
            print("|---|---|---|---|---|---:|---:|---:|---:|")
            for x in records {
                var name = x.test
                if x.batch > 1 || x.test.hasPrefix("batch") { name += " (pp\(x.n_prompt)+tg\(x.n_gen), decode)" }
                print("| \(name) | \(x.backend) | \(x.weights) | \(x.activations) | \(x.cache_type) | \(x.threads) | \(String(format: "%.2f ± %.2f", x.tokens_per_second, x.sd)) | \(x.speedup_vs_naive.map { String(format: "%.2f×", $0) } ?? "") | \(x.peak_rss_bytes.map { formatBytes($0) } ?? "") |")
            }
        }
    }
}
