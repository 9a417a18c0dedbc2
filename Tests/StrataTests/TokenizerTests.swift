import Foundation
import Testing
@testable import Strata

@Suite struct PreTokenizerTests {
    func split(_ p: PreTokenizer, _ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        return p.split(s).map { r in String(String.UnicodeScalarView(s[r])) }
    }

    @Test func gpt2() {
        #expect(split(.gpt2, "Hello world's 123  test\n") == ["Hello", " world", "'s", " 123", " ", " test", "\n"])
        #expect(split(.gpt2, "a\tb  ") == ["a", "\t", "b", "  "])
        #expect(split(.gpt2, "x!!? ''s") == ["x", "!!?", " ''", "s"])
    }

    @Test func smollmSplitsEveryDigit() {
        #expect(split(.smollm, "year 2024!") == ["year", " ", "2", "0", "2", "4", "!"])
        #expect(split(.smollm, "٣٤ x") == ["٣", "٤", " x"])
    }

    @Test func llama3AndQwen2() {
        let text = "Hello  world\n\n  x 12345 I'M"
        #expect(split(.llama3, text) == ["Hello", " ", " world", "\n\n", " ", " x", " ", "123", "45", " I", "'M"])
        #expect(split(.qwen2, text) == ["Hello", " ", " world", "\n\n", " ", " x", " ", "1", "2", "3", "4", "5", " I", "'M"])
        #expect(split(.llama3, "(a) ...\n") == ["(a", ")", " ...\n"])
    }

    @Test func defaultPipeline() {
        #expect(split(.default, "a+b=12345") == ["a", "+", "b", "=", "123", "45"])
    }

    @Test func namesAndAliases() {
        #expect(PreTokenizer.named("smollm") == .smollm)
        #expect(PreTokenizer.named("llama-bpe") == .llama3)
        #expect(PreTokenizer.named("starcoder") == .smollm)
        #expect(PreTokenizer.named("something-new") == nil)
    }
}

@Suite struct TinyTokenizerTests {
    static let tokenizer: Tokenizer = {
        let (tokens, types, merges) = TinyModel.vocabulary()
        return try! Tokenizer(tokens: tokens, types: types.map { TokenType(rawValue: $0)! }, merges: merges,
                              preTokenizer: .smollm, bos: 1, eos: 2)
    }()

    @Test func bpeAppliesMergesByRank() {
        let t = Self.tokenizer
        // " the" → Ġt + he? Rank order: "Ġ t" (0) then "h e" (1), then "Ġt he" (6) → one token.
        let ids = t.encode(" the")
        #expect(ids == [t.id(of: "Ġthe")!])
        #expect(t.encode("hello") == [t.id(of: "he")!, t.id(of: "ll")!, t.id(of: "o")!])
        #expect(t.encode("    ") == [t.id(of: "ĠĠĠĠ")!])
    }

    @Test func specialTokensOnlyWithSpecialParsing() {
        let t = Self.tokenizer
        #expect(t.encode("a<|im_end|>b", special: true) == [t.id(of: "a")!, 2, t.id(of: "b")!])
        #expect(!t.encode("a<|im_end|>b", special: false).contains(2))
        #expect(t.decode(t.encode("a<|im_end|>b", special: false)) == "a<|im_end|>b")
        // Control tokens decode to nothing unless asked.
        #expect(t.decode([2]) == "" && t.decode([2], special: true) == "<|im_end|>")
    }

    @Test func rejectsUnknownPreTokenizerAndBadMerges() throws {
        var w = TinyModel().writer()
        w.metadata = w.metadata.map { $0.0 == "tokenizer.ggml.pre" ? ($0.0, .string("mystery")) : $0 }
        let g = try GGUFFile(path: w.write())
        #expect(throws: TokenizerError.self) { try Tokenizer(gguf: g) }
        do { _ = try Tokenizer(gguf: g) } catch { #expect("\(error)".contains("mystery") && "\(error)".contains("smollm")) }
        let (tokens, types, _) = TinyModel.vocabulary()
        #expect(throws: TokenizerError.badMerge(index: 0, text: "q zz")) {
            try Tokenizer(tokens: tokens, types: types.map { TokenType(rawValue: $0)! }, merges: ["q zz"], preTokenizer: .gpt2, bos: nil, eos: nil)
        }
    }

    @Test func streamingDecoderHoldsIncompleteCharacters() {
        let t = Self.tokenizer
        // "😀" is F0 9F 98 80: one byte token each.
        let ids = t.encode("a😀b")
        #expect(ids.count == 6)
        var d = StreamingDecoder(tokenizer: t)
        let pieces = ids.map { d.append($0) }
        #expect(pieces == ["a", "", "", "", "😀", "b"])
        var e = StreamingDecoder(tokenizer: t)
        _ = e.append(ids[0]); _ = e.append(ids[1])
        #expect(e.flush() == "\u{FFFD}")
    }

    @Test func addsBOSOnceWhenAsked() throws {
        let (tokens, types, merges) = TinyModel.vocabulary()
        let t = try Tokenizer(tokens: tokens, types: types.map { TokenType(rawValue: $0)! }, merges: merges,
                              preTokenizer: .smollm, bos: 1, eos: 2, addBOS: true)
        #expect(t.encode("hi", addSpecial: true).first == 1)
        #expect(t.encode("<|im_start|>hi", special: true, addSpecial: true).prefix(2) != [1, 1])
        #expect(t.encode("hi", addSpecial: false).first != 1)
    }
}

@Suite struct ChatTemplateTests {
    let conversation = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                        ChatMessage(role: "assistant", content: "Hello!"), ChatMessage(role: "user", content: "Bye")]

    @Test func chatml() {
        #expect(ChatTemplate.chatml(defaultSystem: nil).render(conversation).text ==
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
        #expect(ChatTemplate.chatml(defaultSystem: "Default.").render([ChatMessage(role: "user", content: "Q")]).text ==
            "<|im_start|>system\nDefault.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func phi3() {
        #expect(ChatTemplate.phi3.render(Array(conversation[1...])).text ==
            "<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n")
    }

    @Test func llama3() {
        #expect(ChatTemplate.llama3.render(Array(conversation[0 ... 1])).text ==
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test func gemma() {
        #expect(ChatTemplate.gemma.render(conversation).text ==
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    }

    @Test func mistral() {
        #expect(ChatTemplate.mistral.render(conversation).text ==
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello!</s>[INST] Bye [/INST]")
    }

    @Test func zephyr() {
        #expect(ChatTemplate.zephyr(eos: "</s>").render(Array(conversation[1 ... 2])).text ==
            "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|assistant|>\n")
    }

    @Test func detection() throws {
        #expect(try ChatTemplate.detect("{{'<|im_start|>' + m }}") == .chatml(defaultSystem: nil))
        #expect(try ChatTemplate.detect("<|start_header_id|>x<|end_header_id|>") == .llama3)
        #expect(try ChatTemplate.detect("{{ '<start_of_turn>' }}") == .gemma)
        #expect(try ChatTemplate.detect("[INST] x [/INST]") == .mistral)
        #expect(try ChatTemplate.detect("<|user|> <|assistant|> <|end|>") == .phi3)
        #expect(try ChatTemplate.detect("<|user|>\n{{ eos_token }}") == .zephyr(eos: "</s>"))
        #expect(throws: ChatTemplateError.unrecognised(known: ChatTemplate.names)) { try ChatTemplate.detect("{{ weird }}") }
        #expect(throws: ChatTemplateError.missing(known: ChatTemplate.names)) { try ChatTemplate.detect(nil) }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate.named("nope") }
        do { _ = try ChatTemplate.detect("{{ weird }}") } catch { #expect("\(error)".contains("--chat-template")) }
    }

    @Test func contentCannotInjectSpecialTokens() {
        let t = TinyTokenizerTests.tokenizer
        let p = ChatTemplate.chatml(defaultSystem: nil).render([ChatMessage(role: "user", content: "x<|im_end|>y")])
        let ids = t.encode(p)
        #expect(ids.filter { $0 == 2 }.count == 1)   // only the template's own <|im_end|>
        #expect(ids.filter { $0 == 1 }.count == 2)   // <|im_start|>user and <|im_start|>assistant
        // With plain content, the segments tokenize exactly like the whole string with special parsing.
        let q = ChatTemplate.chatml(defaultSystem: "Sys").render([ChatMessage(role: "user", content: " the hello\n\nthe")])
        #expect(t.encode(q) == t.encode(q.text, special: true))
    }
}

@Suite struct RoundTripPropertyTests {
    /// Random strings over many scripts, digits, combining marks, emoji with ZWJ, whitespace runs
    /// and control characters: encode then decode gives the text back (bytes the vocabulary cannot
    /// represent are excluded from the alphabet and tested separately).
    @Test func randomUnicodeRoundTrips() throws {
        let tokenizers: [Tokenizer] = [TinyTokenizerTests.tokenizer] + (RealModel.tokenizer.map { [$0] } ?? [])
        let pools: [[Unicode.Scalar]] = [
            Array("abcXYZ éüßİı".unicodeScalars), Array("Привет мир".unicodeScalars), Array("你好世界学习".unicodeScalars),
            Array("こんにちはカタカナ".unicodeScalars), Array("مرحبا שלום".unicodeScalars), Array("नमस्ते".unicodeScalars),
            Array("0123456789٣٤".unicodeScalars), ["\u{301}", "\u{308}", "\u{20DD}"], ["😀", "🎉", "👨", "\u{200D}", "👩", "🏽", "🇫", "🇷"],
            [" ", " ", " ", "\t", "\n", "\r", "\u{A0}", "\u{3000}"], ["\u{1}", "\u{7}", "\u{1B}", "\u{7F}", "\u{85}"],
            Array("'s'T!?.,;:()[]{}<>|-_=+*/\\\"".unicodeScalars), Array("<|im_start|><|im_end|>".unicodeScalars),
        ]
        var rng = Xoshiro256(seed: 2024)
        for t in tokenizers {
            for _ in 0 ..< 500 {
                var s = String.UnicodeScalarView()
                let n = Int(rng.next() % 40)
                for _ in 0 ..< n {
                    let pool = pools[Int(rng.next() % UInt64(pools.count))]
                    let c = pool[Int(rng.next() % UInt64(pool.count))]
                    let repeats = c == " " ? Int(rng.next() % 5) + 1 : 1
                    for _ in 0 ..< repeats { s.append(c) }
                }
                let text = String(s)
                guard Set(text.utf8).isDisjoint(with: t.unrepresentableBytes) else { continue }
                let ids = t.encode(text)
                #expect(t.decode(ids) == text, "round trip of \(text.debugDescription)")
                #expect(t.decode(t.encode(text, special: true), special: true) == text)
            }
        }
    }

    @Test func unrepresentableBytesAreDroppedNotCrashing() {
        guard let t = RealModel.tokenizer else { Issue.record(Comment(rawValue: RealModel.missing)); return }
        #expect(t.unrepresentableBytes.contains(0x04))
        #expect(t.decode(t.encode("a\u{4}b")) == "ab")
    }
}
