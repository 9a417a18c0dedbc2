import ArgumentParser
import Foundation
import Strata

/// How the prompt was given on the command line.
struct PromptOptions: ParsableArguments {
    @Argument(help: "Prompt text ('-' reads stdin).")
    var prompt: String?

    @Option(name: .customLong("prompt-ids"), help: "Prompt as comma-separated token ids (no tokenizer needed).")
    var promptIds: String?

    @Flag(help: "Render the prompt as one user message through the model's chat template.")
    var chat = false

    @Option(help: "System message (with --chat).")
    var system: String?

    @Option(name: .customLong("chat-template"), help: "Override the chat template: \(ChatTemplate.names.joined(separator: ", ")).")
    var chatTemplate: String?

    func validate() throws {
        if prompt == nil && promptIds == nil { throw ValidationError("give a prompt (TEXT, or '-' for stdin) or --prompt-ids") }
        if prompt != nil && promptIds != nil { throw ValidationError("give either TEXT or --prompt-ids, not both") }
        if promptIds != nil && chat { throw ValidationError("--chat renders text; it cannot be combined with --prompt-ids") }
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
        if let ids = promptIds { _ = try parseIds(ids, option: "--prompt-ids") }
        if let t = chatTemplate { do { _ = try ChatTemplate.named(t) } catch { throw ValidationError("\(error)") } }
    }

    /// The prompt as ids, with the tokenizer when one is needed (nil tokenizer: ids given).
    func resolve(model: Model, verbose: Bool) throws -> (ids: [Int32], tokenizer: Tokenizer?) {
        if let s = promptIds {
            return (try parseIds(s, option: "--prompt-ids"), try? Tokenizer(gguf: model.gguf))
        }
        let tokenizer = try Tokenizer(gguf: model.gguf)
        let text = try readText(prompt!)
        if chat {
            let eosText = tokenizer.eos.map { tokenizer.tokens[Int($0)] } ?? "</s>"
            let template = try chatTemplate.map { try ChatTemplate.named($0, eos: eosText) }
                ?? ChatTemplate.of(model, eos: eosText)
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: text))
            let rendered = template.render(messages)
            if verbose { printErr("prompt (\(template.name) template):\n\(rendered.text)") }
            return (tokenizer.encode(rendered, addSpecial: true), tokenizer)
        }
        return (tokenizer.encode(text, special: true, addSpecial: true), tokenizer)
    }
}

struct GenerateOutput: Encodable {
    struct Step: Encodable {
        let id: Int32
        let token: String?
        let logprob: Float
        let top: [TokenLogprob]
    }
    let prompt_ids: [Int32]
    let ids: [Int32]
    let text: String
    let finish_reason: String
    let seed: UInt64
    let timings: Timings
    let logprobs: [Step]?

    struct Timings: Encodable {
        let prompt_tokens: Int
        let prompt_ms: Double
        let prompt_tokens_per_second: Double
        let generated_tokens: Int
        let generation_ms: Double
        let generation_tokens_per_second: Double
        let time_to_first_token_ms: Double
        init(_ t: GenerationTimings) {
            prompt_tokens = t.promptTokens
            prompt_ms = t.promptSeconds * 1000
            prompt_tokens_per_second = t.promptTokensPerSecond
            generated_tokens = t.generatedTokens
            generation_ms = t.generationSeconds * 1000
            generation_tokens_per_second = t.generationTokensPerSecond
            time_to_first_token_ms = t.timeToFirstToken * 1000
        }
    }
}

func printTimings(_ t: GenerationTimings) {
    printErr(String(format: "\nprompt: %d tokens in %.1f ms (%.1f tokens/s) | generated: %d tokens in %.1f ms (%.1f tokens/s) | time to first token: %.1f ms",
                    t.promptTokens, t.promptSeconds * 1000, t.promptTokensPerSecond, t.generatedTokens,
                    t.generationSeconds * 1000, t.generationTokensPerSecond, t.timeToFirstToken * 1000))
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming it to stdout (timings to stderr).",
        discussion: SamplingOptions.chainHelp
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @OptionGroup var samplingOptions: SamplingOptions

    @Flag(help: "Print one JSON object: prompt_ids, ids, text, finish_reason, seed, timings (and logprobs).")
    var json = false

    @Option(help: "With --json: each step's chosen-token logprob and the top N alternatives.")
    var logprobs: Int?

    func validate() throws {
        if let n = logprobs, n < 0 || n > 100 { throw ValidationError("--logprobs must be between 0 and 100, got \(n)") }
    }

    func run() throws {
        let model = try modelOptions.loadModel()
        let (ids, tokenizer) = try promptOptions.resolve(model: model, verbose: modelOptions.verbose)
        let ctx = try InferenceContext(model: model, options: modelOptions.contextOptions())
        modelOptions.report(ctx)
        let generator = Generator(model: model, tokenizer: tokenizer, context: ctx)
        var params = samplingOptions.generation
        params.logprobs = logprobs != nil
        params.topLogprobs = logprobs ?? 0
        let result = try generator.generate(promptIds: ids, parameters: params) { event in
            if !json { emit(event.text) }
            return true
        }
        if json {
            let steps = logprobs == nil ? nil : zip(result.ids, zip(result.logprobs, result.topLogprobs)).map {
                GenerateOutput.Step(id: $0.0, token: tokenizer?.piece($0.0), logprob: $0.1.0, top: $0.1.1)
            }
            print(jsonString(GenerateOutput(prompt_ids: result.promptIds, ids: result.ids, text: result.text,
                                            finish_reason: result.finishReason.rawValue, seed: result.seed,
                                            timings: .init(result.timings), logprobs: steps)))
        } else {
            emit("\n")
            printTimings(result.timings)
            if modelOptions.verbose { printErr("finish_reason: \(result.finishReason.rawValue), seed: \(result.seed)") }
        }
    }
}
