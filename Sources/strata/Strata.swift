import ArgumentParser
import CStdout
import Foundation
import Strata

@main
struct StrataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strata",
        abstract: "Run transformer language models on CPU: generate, inspect, tokenize, benchmark, profile.",
        subcommands: [GenerateCommand.self, ChatCommand.self, NextCommand.self, TokenizeCommand.self,
                      DetokenizeCommand.self, InfoCommand.self, BatchCommand.self, BenchCommand.self, ProfileCommand.self,
                      AttentionCommand.self, EmbedCommand.self, SimilarityCommand.self, ServeCommand.self,
                      PullCommand.self, ModelsCommand.self]
    )

    /// Usage errors (unknown flag, bad value) exit with 2, before any model is loaded (or just
    /// after, for values only the model can check); runtime errors (a corrupt model, a prompt too
    /// long, output that cannot be written) exit with 1. Both print one clear line.
    static func main() {
        var parsed: ParsableCommand.Type?
        do {
            var command = try parseAsRoot()
            parsed = type(of: command)
            if let serve = command as? AsyncParsableCommand {
                try runAsync(serve)
            } else {
                try command.run()
            }
            checkStandardOutput()
        } catch let error as ExitCode {
            if error == .success { checkStandardOutput() }
            exit(withError: error)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, --version: printed here (the text `exit(withError:)` would print), so
                // that it is checked like any other output.
                let text = fullMessage(for: error)
                if !text.isEmpty { emit(text + "\n") }
                checkStandardOutput()
                Foundation.exit(0)
            }
            let usage = code == .validationFailure || error is ValidationError
                || String(describing: type(of: error)).contains("CommandError")
            if usage {
                if let parsed, parsed != Self.self, error is ValidationError {
                    // A check in `run` (one that needs the model, such as a layer number): the
                    // root's usage would be the wrong one, so point at the subcommand's help.
                    let name = parsed._commandName
                    printErr("Error: \(error)\n  See 'strata \(name) --help' for more information.")
                } else {
                    printErr(fullMessage(for: error))
                }
                Foundation.exit(2)
            }
            printErr("error: \(error)")
            Foundation.exit(1)
        }
    }
}

/// Runs an async command (`serve`) to its end from the synchronous entry point the other commands
/// keep, and rethrows its error.
func runAsync(_ command: AsyncParsableCommand) throws {
    final class Outcome: @unchecked Sendable { var error: Error? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var command = command
    Task.detached {
        do { try await command.run() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let e = outcome.error { throw e }
}

func printErr(_ s: String) { writeErr(s + "\n") }

/// Flushes standard output before a successful exit; if anything written to it was lost, ends
/// with `outputFailed` instead.
func checkStandardOutput() {
    let e = strata_stdout_finish()
    if e != 0 { outputFailed(e) }
}

/// Writes to stderr; a failure is ignored (there is nowhere left to report it), never a trap.
func writeErr(_ s: String) { try? FileHandle.standardError.write(contentsOf: Data(s.utf8)) }
