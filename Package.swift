// swift-tools-version:6.1
import PackageDescription

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
            dependencies: ["COpenBLAS"]
        ),
        .executableTarget(
            name: "strata",
            dependencies: [
                "Strata",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "StrataTests",
            dependencies: ["Strata"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
