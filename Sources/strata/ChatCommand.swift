import ArgumentParser
import Dispatch
import Foundation
import Strata

/// Set by SIGINT while an answer is being generated.
final class InterruptState: @unchecked Sendable {
    private let lock = NSLock()
    private var generating = false
    private var interrupted = false
    func begin() { lock.lock(); generating = true; interrupted = false; lock.unlock() }
    func end() { lock.lock(); generating = false; lock.unlock() }
    /// Returns true when an answer was running (so the program keeps going).
    func interrupt() -> Bool { lock.lock(); defer { lock.unlock() }; if generating { interrupted = true }; return generating }
    var isInterrupted: Bool { lock.lock(); defer { lock.unlock() }; return interrupted }
}

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk with the model, turn by turn, through its chat template.",
        discussion: "Commands: /reset (new conversation), /system TEXT (set the system message), /quit. Ctrl-C stops the current answer. The KV cache is kept between turns: only each new turn's tokens are prefilled. Reads turns line by line when stdin is not a terminal. " + SamplingOptions.chainHelp
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var samplingOptions: SamplingOptions
    @Option(help: "System message.")
    var system: String?
    @Option(name: .customLong("chat-template"), help: "Override the chat template: \(ChatTemplate.names.joined(separator: ", ")).")
    var chatTemplate: String?

    func validate() throws {
        if let t = chatTemplate { do { _ = try ChatTemplate.named(t) } catch { throw ValidationError("\(error)") } }
    }

    func run() throws {
        let model = try modelOptions.loadModel()
        let engine = try Engine(model: model, options: modelOptions.contextOptions(), chatTemplate: chatTemplate)
        let template = try engine.requireTemplate()
        modelOptions.report(engine.context)
        let interactive = isatty(STDIN_FILENO) == 1

        let state = InterruptState()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            if !state.interrupt() { emit("\n"); Foundation.exit(130) }
        }
        source.resume()

        var system = self.system
        var messages: [ChatMessage] = []
        if interactive { printErr("chat with \(model.config.architecture.name) (\(template.name) template). /reset, /system TEXT, /quit; Ctrl-C stops an answer.") }
        while true {
            if interactive { emit("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/quit" || input == "/exit" { break }
            if input == "/reset" { messages.removeAll(); engine.reset(); if interactive { printErr("(new conversation)") }; continue }
            if input.hasPrefix("/system") {
                let s = input.dropFirst("/system".count).trimmingCharacters(in: .whitespaces)
                system = s.isEmpty ? nil : s
                if interactive { printErr(system == nil ? "(system message cleared)" : "(system message set)") }
                continue
            }
            messages.append(ChatMessage(role: "user", content: line))
            let conversation = (system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + messages
            if modelOptions.verbose { printErr(template.render(conversation).text) }
            state.begin()
            let result: GenerationResult
            do {
                result = try engine.generate(.messages(conversation), parameters: samplingOptions.generation, reuseCache: true) { event in
                    emit(event.text)
                    return !state.isInterrupted
                }
            } catch {
                state.end()
                messages.removeLast()
                printErr("error: \(error)")
                continue
            }
            state.end()
            emit("\n")
            if result.finishReason == .cancelled { printErr("(stopped)") }
            if modelOptions.verbose { printTimings(result.timings) }
            messages.append(ChatMessage(role: "assistant", content: result.text))
        }
    }
}
