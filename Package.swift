// swift-tools-version:6.1
import PackageDescription
import Foundation

// Strata's kernels are Swift SIMD code. Without a target CPU, Swift compiles for baseline x86-64
// (SSE2, no FMA): each fused multiply-add becomes a library call and the `simd` backend's vectors
// are split into 128-bit pieces. Strata is built from source where it runs, so it is compiled for
// the build machine's CPU ("native", as llama.cpp's GGML_NATIVE does). STRATA_TARGET_CPU overrides
// it (e.g. haswell for a binary that must run on other x86-64 machines with AVX2 and FMA).
//
// The `simd` backend's micro-kernel is shaped for the register file: 16-float vectors and 8-row
// blocks with AVX-512 (32 registers), 8-float vectors and 6-row blocks otherwise. It takes the
// AVX-512 shape when the target is native and the build machine has AVX-512 (F, BW, DQ, VL), or
// when STRATA_AVX512=1; STRATA_AVX512=0 forces the other.
#if arch(x86_64)
let environment = ProcessInfo.processInfo.environment
let targetCPU = environment["STRATA_TARGET_CPU"] ?? "native"
let hostFlags = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
    .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
let hostAVX512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(hostFlags.contains)
let useAVX512 = environment["STRATA_AVX512"].map { $0 == "1" } ?? (targetCPU == "native" && hostAVX512)
let strataSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU])] + (useAVX512 ? [.define("STRATA_AVX512")] : [])
// The C panel unpacking is vectorised by the compiler for the same CPU; always optimised (it runs
// per panel per matrix multiply, debug builds included), without fused multiply-adds, so that
// every value is the exact float of `Dequantize`.
let quantCSettings: [CSetting] = [.unsafeFlags(["-O3", "-march=\(targetCPU)", "-ffp-contract=off"] + (useAVX512 ? [] : ["-mno-avx512f"]))]
#else
let strataSettings: [SwiftSetting] = []
let quantCSettings: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=off"])]
#endif

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Strata", targets: ["Strata"]),
        .executable(name: "strata", targets: ["strata"]),
    ],
    dependencies: [
        // Command-line parsing with typed options, validation and generated --help.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `strata serve`: the HTTP server (SwiftNIO underneath, streaming response bodies).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // HTTP header names for the server's responses (Hummingbird's own HTTP types).
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        // NIOCore's ByteBuffer and NIOHTTP1's parser errors, which Hummingbird hands through.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.65.0"),
        // Structured request logs on stderr.
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        // Counters, gauges and histograms, exported in Prometheus's text format at /metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // Graceful shutdown on SIGTERM/SIGINT: stop accepting, let running requests finish.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // OpenBLAS's CBLAS interface, found through pkg-config (Debian: libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS",
            path: "CSystem/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // A prefetch hint for the packed GEMM (header only; Swift cannot express one).
        .systemLibrary(name: "CPrefetch", path: "CSystem/CPrefetch"),
        // The spin-wait pause hint for the thread pool's workers (header only; Swift cannot express one).
        .systemLibrary(name: "CSpin", path: "CSystem/CSpin"),
        // Standard output's write, flush and error check for the command line (header only; Swift 6
        // cannot name C's `stdout`), so a full disk or a closed pipe is an error, not lost output.
        .systemLibrary(name: "CStdout", path: "CSystem/CStdout"),
        // Half-precision loads widened to float32 (F16C), for the half-precision KV cache (header only).
        .systemLibrary(name: "CHalf", path: "CSystem/CHalf"),
        // Quantized weight panels: packing at load, unpacking per panel (C the compiler vectorises).
        .target(name: "CQuant", path: "CSystem/CQuant", cSettings: quantCSettings),
        .target(
            name: "Strata",
            dependencies: ["COpenBLAS", "CPrefetch", "CSpin", "CHalf", "CQuant"],
            swiftSettings: strataSettings
        ),
        // The OpenAI-compatible server on the continuous batcher, with its chat page.
        .target(
            name: "StrataServer",
            dependencies: [
                "Strata",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/chat.html")]
        ),
        .executableTarget(
            name: "strata",
            dependencies: [
                "Strata",
                "StrataServer",
                "CStdout",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Kernel microbenchmarks and machine ceilings (`make bench`).
        .executableTarget(
            name: "strata-microbench",
            dependencies: ["Strata"],
            path: "Benchmarks/Microbench"
        ),
        .testTarget(
            name: "StrataTests",
            dependencies: ["Strata", "StrataServer", "CQuant"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses (`make fuzz`), only when asked for: they link against libFuzzer's runtime
// (-sanitize=fuzzer), which an ordinary build does not have.
if ProcessInfo.processInfo.environment["STRATA_FUZZ"] == "1" {
    package.targets.append(.systemLibrary(name: "CFuzz", path: "CSystem/CFuzz"))
    for name in ["GGUF", "Tokenizer", "ChatTemplate", "BatchInput", "Safetensors"] {
        package.targets.append(.executableTarget(name: "Fuzz\(name)", dependencies: ["Strata", "CFuzz"], path: "Fuzz/\(name)"))
    }
}
