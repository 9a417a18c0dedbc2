import Foundation

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A rendered prompt: template markup (where special tokens are parsed) and message content
/// (always plain text, so a user who types `<|im_end|>` cannot close a turn).
public struct RenderedPrompt: Sendable, Equatable {
    public enum Segment: Sendable, Equatable {
        case markup(String)
        case content(String)
    }
    public var segments: [Segment] = []
    public var text: String { segments.map { switch $0 { case let .markup(s), let .content(s): s } }.joined() }
    mutating func markup(_ s: String) { segments.append(.markup(s)) }
    mutating func content(_ s: String) { segments.append(.content(s)) }
}

public enum ChatTemplateError: Error, Equatable, CustomStringConvertible {
    case unrecognised(known: [String])
    case missing(known: [String])
    case unknownName(String, known: [String])
    case invalidRole(String)

    public var description: String {
        switch self {
        case let .invalidRole(r):
            return "message role \(r.debugDescription) is not a plain name (letters, digits, '_' or '-', at most 32): roles are rendered into the template's control tokens"
        case let .unrecognised(known):
            return "the model's chat template (tokenizer.chat_template) is not one Strata recognises; pass --chat-template NAME with one of: \(known.joined(separator: ", "))"
        case let .missing(known):
            return "the model has no chat template (tokenizer.chat_template); pass --chat-template NAME with one of: \(known.joined(separator: ", "))"
        case let .unknownName(n, known):
            return "unknown chat template '\(n)'; known: \(known.joined(separator: ", "))"
        }
    }
}

/// The chat formats Strata renders, detected from the template's markers as llama.cpp does.
public enum ChatTemplate: Sendable, Equatable {
    /// `<|im_start|>role\ncontent<|im_end|>\n`; `defaultSystem` is inserted when the first message
    /// is not a system message (SmolLM2's template does this).
    case chatml(defaultSystem: String?)
    /// `<|role|>\ncontent<|end|>\n`
    case phi3
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
    case llama3
    /// `<start_of_turn>user\ncontent<end_of_turn>\n`, the system prompt folded into the first user turn.
    case gemma
    /// `[INST] content [/INST]` with `<<SYS>>` for the system prompt (Mistral, Llama 2).
    case mistral
    /// `<|role|>\ncontent</s>\n`
    case zephyr(eos: String)

    public static let names = ["chatml", "phi3", "llama3", "gemma", "mistral", "zephyr"]

    public var name: String {
        switch self {
        case .chatml: "chatml"; case .phi3: "phi3"; case .llama3: "llama3"
        case .gemma: "gemma"; case .mistral: "mistral"; case .zephyr: "zephyr"
        }
    }

    /// A family by name (`--chat-template`).
    public static func named(_ name: String, eos: String = "</s>") throws -> ChatTemplate {
        switch name.lowercased() {
        case "chatml": return .chatml(defaultSystem: nil)
        case "phi3", "phi-3": return .phi3
        case "llama3", "llama-3": return .llama3
        case "gemma": return .gemma
        case "mistral", "llama2", "llama-2": return .mistral
        case "zephyr": return .zephyr(eos: eos)
        default: throw ChatTemplateError.unknownName(name, known: names)
        }
    }

    /// The model's chat format: its file's template, or when the file has none the format its
    /// architecture uses (Gemma's turns for `gemma3`).
    public static func of(_ model: Model, eos: String) throws -> ChatTemplate {
        let t = model.gguf.metadata["tokenizer.chat_template"]?.stringValue
        if t == nil || t!.isEmpty, let name = model.plan.defaultChatTemplate { return try named(name, eos: eos) }
        return try detect(t, eos: eos)
    }

    /// Detects the family from a Jinja template's markers.
    public static func detect(_ template: String?, eos: String = "</s>") throws -> ChatTemplate {
        guard let t = template, !t.isEmpty else { throw ChatTemplateError.missing(known: names) }
        if t.contains("<|im_start|>") { return .chatml(defaultSystem: defaultSystemPrompt(t)) }
        if t.contains("<|start_header_id|>") && t.contains("<|end_header_id|>") { return .llama3 }
        if t.contains("<start_of_turn>") { return .gemma }
        if t.contains("[INST]") { return .mistral }
        if t.contains("<|assistant|>") && t.contains("<|end|>") { return .phi3 }
        if t.contains("<|user|>") { return .zephyr(eos: eos) }
        throw ChatTemplateError.unrecognised(known: names)
    }

    /// The literal system message a ChatML template inserts when none is given, if it has one.
    static func defaultSystemPrompt(_ t: String) -> String? {
        let marker = "<|im_start|>system\n"
        guard t.contains("!= 'system'") || t.contains("!= \"system\""),
              let start = t.range(of: marker) else { return nil }
        let rest = t[start.upperBound...]
        guard let end = rest.range(of: "<|im_end|>") else { return nil }
        let body = String(rest[..<end.lowerBound])
        // Only a literal: a template that builds it from variables has no fixed default.
        return body.contains("{{") || body.contains("'") || body.contains("\"") ? nil : body
    }

    /// Roles are rendered as markup (Phi-3 and Zephyr even spell them inside control tokens), so a
    /// role must be a plain name: letters, digits, '_' or '-', 1 to 32 characters. Anything else
    /// could inject control tokens.
    public static func validate(_ messages: [ChatMessage]) throws {
        for m in messages {
            let ok = (1 ... 32).contains(m.role.count) && m.role.unicodeScalars.allSatisfy {
                ($0.isASCII && (CharacterSet.alphanumerics.contains($0))) || $0 == "_" || $0 == "-"
            }
            guard ok else { throw ChatTemplateError.invalidRole(m.role) }
        }
    }

    /// `validate(_:)`, and for the templates that spell the role inside a control token (Phi-3's
    /// and Zephyr's `<|role|>`), only the roles they define: a plain name such as "end" would
    /// otherwise become `<|end|>`, the end-of-turn token.
    public func validate(_ messages: [ChatMessage]) throws {
        try Self.validate(messages)
        switch self {
        case .phi3, .zephyr:
            for m in messages where !["system", "user", "assistant"].contains(m.role) { throw ChatTemplateError.invalidRole(m.role) }
        default: break
        }
    }

    /// Renders messages, then the opening of the assistant's turn when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> RenderedPrompt {
        var p = RenderedPrompt()
        switch self {
        case let .chatml(defaultSystem):
            if let defaultSystem, messages.first?.role != "system" {
                p.markup("<|im_start|>system\n"); p.content(defaultSystem); p.markup("<|im_end|>\n")
            }
            for m in messages {
                p.markup("<|im_start|>" + m.role + "\n"); p.content(m.content); p.markup("<|im_end|>\n")
            }
            if addGenerationPrompt { p.markup("<|im_start|>assistant\n") }
        case .phi3:
            for m in messages { p.markup("<|" + m.role + "|>\n"); p.content(m.content); p.markup("<|end|>\n") }
            if addGenerationPrompt { p.markup("<|assistant|>\n") }
        case .llama3:
            for m in messages {
                p.markup("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n")
                p.content(trimmed(m.content))
                p.markup("<|eot_id|>")
            }
            if addGenerationPrompt { p.markup("<|start_header_id|>assistant<|end_header_id|>\n\n") }
        case .gemma:
            var system: String?
            for m in messages {
                if m.role == "system" { system = trimmed(m.content); continue }
                let role = m.role == "assistant" ? "model" : m.role
                p.markup("<start_of_turn>" + role + "\n")
                if let s = system, role == "user" { p.content(s + "\n\n"); system = nil }
                p.content(trimmed(m.content))
                p.markup("<end_of_turn>\n")
            }
            if addGenerationPrompt { p.markup("<start_of_turn>model\n") }
        case .mistral:
            var system: String?
            var open = false
            for m in messages {
                switch m.role {
                case "system": system = trimmed(m.content)
                case "user":
                    p.markup("[INST] ")
                    if let s = system { p.markup("<<SYS>>\n"); p.content(s); p.markup("\n<</SYS>>\n\n"); system = nil }
                    p.content(trimmed(m.content)); p.markup(" [/INST]")
                    open = true
                default:
                    p.markup(open ? " " : ""); p.content(trimmed(m.content)); p.markup("</s>")
                    open = false
                }
            }
        case let .zephyr(eos):
            for m in messages { p.markup("<|" + m.role + "|>\n"); p.content(m.content); p.markup(eos + "\n") }
            if addGenerationPrompt { p.markup("<|assistant|>\n") }
        }
        return p
    }

    private func trimmed(_ s: String) -> String {
        var sub = Substring(s)
        while let f = sub.first, f.isWhitespace { sub.removeFirst() }
        while let l = sub.last, l.isWhitespace { sub.removeLast() }
        return String(sub)
    }
}

extension Tokenizer {
    /// Token ids of a rendered prompt: special tokens are parsed in markup only; adjacent text is
    /// pre-tokenized as one run, so the ids equal those of the whole string when the content holds
    /// no special-token text.
    public func encode(_ prompt: RenderedPrompt, addSpecial: Bool = true) -> [Int32] {
        var utf8: [UInt8] = []
        var fragments: [Fragment] = []
        for seg in prompt.segments {
            let base = utf8.count
            switch seg {
            case let .markup(s):
                let b = Array(s.utf8)
                utf8 += b
                for f in splitSpecial(b) {
                    if case let .text(r) = f { fragments.append(.text(r.lowerBound + base ..< r.upperBound + base)) } else { fragments.append(f) }
                }
            case let .content(s):
                utf8 += s.utf8
                fragments.append(.text(base ..< utf8.count))
            }
        }
        // Merge neighbouring text fragments.
        var merged: [Fragment] = []
        for f in fragments {
            if case let .text(r) = f, case let .text(prev)? = merged.last, prev.upperBound == r.lowerBound {
                merged[merged.count - 1] = .text(prev.lowerBound ..< r.upperBound)
            } else if case let .text(r) = f, r.isEmpty {
                continue
            } else {
                merged.append(f)
            }
        }
        return encode(fragments: merged, utf8: utf8, addSpecial: addSpecial)
    }
}
