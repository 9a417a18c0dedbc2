// swift-tools-version:6.1
import PackageDescription
import Foundation

// Strata's kernels use SIMD8<Float> with fused multiply-add. Without a target CPU, Swift compiles
// for baseline x86-64 (SSE2, no FMA) and each fused multiply-add becomes a library call, several
// times slower. Haswell (AVX2 + FMA, 2013 onwards) is the default on x86_64, as the environment's
// OPENBLAS_CORETYPE also assumes; set STRATA_TARGET_CPU (e.g. x86-64, skylake-avx512) to change it.
#if arch(x86_64)
let targetCPU = ProcessInfo.processInfo.environment["STRATA_TARGET_CPU"] ?? "haswell"
let strataSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU])]
#else
let strataSettings: [SwiftSetting] = []
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
    ],
    targets: [
        // OpenBLAS's CBLAS interface, found through pkg-config (Debian: libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS",
            path: "CSystem/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "Strata",
            dependencies: ["COpenBLAS"],
            swiftSettings: strataSettings
        ),
        .executableTarget(
            name: "strata",
            dependencies: [
                "Strata",
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
            dependencies: ["Strata"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
