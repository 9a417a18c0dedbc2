import Foundation
import Strata

// Request and response bodies of the OpenAI API, as its documentation gives them. Unknown fields
// are ignored (clients send extras); a known field of the wrong type is a 400 naming it.

/// An error answered with OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error, CustomStringConvertible {
    var status: Int
    var message: String
    var type: String
    var param: String?
    var code: String?
    var headers: [(String, String)] = []

    static func invalid(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 503 with `Retry-After: 1`: full queue, or the model still loading.
    static func busy(_ message: String, code: String = "server_busy") -> APIError {
        APIError(status: 503, message: message, type: "server_busy", param: nil, code: code, headers: [("Retry-After", "1")])
    }

    var description: String { "\(status) \(message)" }

    var json: String {
        var e: [String: Any] = ["message": message, "type": type]
        e["param"] = param ?? NSNull()
        e["code"] = code ?? NSNull()
        return JSON.string(["error": e])
    }
}

/// JSON text from Foundation values (dictionaries, arrays, strings, numbers, NSNull), keys sorted.
enum JSON {
    static func string(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject(value),
              let d = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return #"{"error":{"message":"internal error: unencodable response","type":"server_error","param":null,"code":null}}"#
        }
        return String(decoding: d, as: UTF8.self)
    }

    /// A log-probability as JSON can hold it (it has no infinities).
    static func number(_ x: Float) -> Any { x.isFinite ? Double(x) : (x < 0 ? -9999.0 : NSNull()) }
}

/// Decodes a request body, turning the decoder's errors into a 400 that names the field.
func decodeBody<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
    guard !data.isEmpty else { throw APIError.invalid("the request body is empty; send a JSON object", param: nil) }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let e as APIError {
        throw e
    } catch let DecodingError.typeMismatch(_, c) where c.codingPath.isEmpty {
        throw APIError.invalid("the request body must be a JSON object", param: nil)
    } catch let DecodingError.typeMismatch(expected, c) {
        throw APIError.invalid("'\(path(c.codingPath))' has the wrong type: expected \(describe(expected))", param: path(c.codingPath))
    } catch let DecodingError.valueNotFound(expected, c) {
        throw APIError.invalid("'\(path(c.codingPath))' is null: expected \(describe(expected))", param: path(c.codingPath))
    } catch let DecodingError.keyNotFound(key, c) {
        let p = path(c.codingPath + [key])
        throw APIError.invalid("'\(p)' is required", param: p)
    } catch let DecodingError.dataCorrupted(c) {
        if c.codingPath.isEmpty {
            // The decoder gives no field for a number that does not fit its field (1.5 or 1e30
            // for an integer): the body is valid JSON then, and the message is what can be said.
            if (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) == nil {
                throw APIError.invalid("the request body is not valid JSON", param: nil, code: "invalid_json")
            }
            throw APIError.invalid("a number in the request body does not fit its field: an integer field (max_tokens, n, seed, top_k, …) "
                                   + "given a fraction, or a number beyond the field's range", param: nil)
        }
        throw APIError.invalid("'\(path(c.codingPath))': \(c.debugDescription)", param: path(c.codingPath))
    } catch {
        throw APIError.invalid("the request body cannot be read: \(error)", param: nil)
    }
}

private func path(_ keys: [CodingKey]) -> String {
    var s = ""
    for k in keys {
        if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : "." + k.stringValue }
    }
    return s
}

private func describe(_ t: Any.Type) -> String {
    switch t {
    case is String.Type: "a string"
    case is Bool.Type: "a boolean"
    case is Int.Type, is Int64.Type: "an integer"
    case is Float.Type, is Double.Type: "a number"
    case is [Any].Type: "an array"
    default: "\(t)"
    }
}

/// `stop`: a string or an array of strings.
struct StopField: Decodable {
    var values: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { values = [s]; return }
        values = try c.decode([String].self)
    }
}

struct StreamOptions: Decodable {
    var include_usage: Bool?
}

/// The sampling and length fields both endpoints share, plus Strata's own samplers.
struct SamplingFields: Decodable {
    var model: String?
    var stream: Bool?
    var stream_options: StreamOptions?
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var temperature: Float?
    var top_p: Float?
    var top_k: Int?
    var min_p: Float?
    var repeat_penalty: Float?
    var repeat_last_n: Int?
    var presence_penalty: Float?
    var frequency_penalty: Float?
    var stop: StopField?
    var seed: Int64?
    var logit_bias: [String: Float]?
    var n: Int?
    var ignore_eos: Bool?
}

/// A chat message; `content` is a string or an array of parts of which the text ones are joined.
struct MessageField: Decodable {
    var role: String
    var content: String

    private enum Keys: String, CodingKey { case role, content }
    private struct Part: Decodable {
        var type: String
        var text: String?
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        role = try c.decode(String.self, forKey: .role)
        if try c.decodeNil(forKey: .content) { content = ""; return }
        if let s = try? c.decode(String.self, forKey: .content) { content = s; return }
        let parts = try c.decode([Part].self, forKey: .content)
        var text = ""
        for p in parts {
            guard p.type == "text", let t = p.text else {
                throw APIError.invalid("only text content parts are supported, not '\(p.type)'", param: "messages")
            }
            text += t
        }
        content = text
    }
}

struct ChatRequest: Decodable {
    var messages: [MessageField]
    var logprobs: Bool?
    var top_logprobs: Int?
    var fields: SamplingFields

    private enum Keys: String, CodingKey { case messages, logprobs, top_logprobs }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        messages = try c.decode([MessageField].self, forKey: .messages)
        logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs)
        top_logprobs = try c.decodeIfPresent(Int.self, forKey: .top_logprobs)
        fields = try SamplingFields(from: decoder)
    }
}

/// `prompt`: a string, an array of one string, or token ids.
enum PromptField: Decodable {
    case text(String)
    case ids([Int32])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .text(s); return }
        if let ids = try? c.decode([Int32].self) { self = .ids(ids); return }
        if let a = try? c.decode([String].self) {
            guard a.count == 1 else { throw APIError.invalid("give one prompt per request (got \(a.count))", param: "prompt") }
            self = .text(a[0]); return
        }
        if let a = try? c.decode([[Int32]].self) {
            guard a.count == 1 else { throw APIError.invalid("give one prompt per request (got \(a.count))", param: "prompt") }
            self = .ids(a[0]); return
        }
        throw APIError.invalid("'prompt' must be a string or an array of token ids", param: "prompt")
    }
}

struct CompletionRequest: Decodable {
    var prompt: PromptField
    /// Completions' `logprobs` is how many alternatives to report per token.
    var logprobs: Int?
    var echo: Bool?
    var fields: SamplingFields

    private enum Keys: String, CodingKey { case prompt, logprobs, echo }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        prompt = try c.decode(PromptField.self, forKey: .prompt)
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
        fields = try SamplingFields(from: decoder)
    }
}

struct TokenizeRequest: Decodable {
    var content: String
    var add_special: Bool?
    var with_pieces: Bool?
}

struct DetokenizeRequest: Decodable {
    var tokens: [Int32]
}

extension SamplingFields {
    /// The generation parameters these fields ask for, checked: each bad value is a 400 naming its
    /// field. Absent fields take Strata's defaults (llama.cpp's), as `strata generate` does.
    func parameters(vocabularySize: Int, contextLength: Int) throws -> GenerationParameters {
        var g = GenerationParameters()
        var s = SamplingParameters()
        if let t = temperature {
            guard t.isFinite, t >= 0, t <= 100 else { throw APIError.invalid("temperature must be between 0 and 100, got \(t)", param: "temperature") }
            s.temperature = t
        }
        if let p = top_p {
            guard p.isFinite, p > 0, p <= 1 else { throw APIError.invalid("top_p must be in (0, 1], got \(p)", param: "top_p") }
            s.topP = p
        }
        if let k = top_k {
            guard k >= 0 else { throw APIError.invalid("top_k must be ≥ 0, got \(k)", param: "top_k") }
            s.topK = k
        }
        if let m = min_p {
            guard m.isFinite, m >= 0, m <= 1 else { throw APIError.invalid("min_p must be in [0, 1], got \(m)", param: "min_p") }
            s.minP = m
        }
        if let r = repeat_penalty {
            guard r.isFinite, r > 0 else { throw APIError.invalid("repeat_penalty must be > 0, got \(r)", param: "repeat_penalty") }
            s.repeatPenalty = r
        }
        if let n = repeat_last_n {
            guard n >= -1 else { throw APIError.invalid("repeat_last_n must be ≥ -1, got \(n)", param: "repeat_last_n") }
            s.repeatLastN = n
        }
        if let p = presence_penalty {
            guard p.isFinite, p >= -2, p <= 2 else { throw APIError.invalid("presence_penalty must be between -2 and 2, got \(p)", param: "presence_penalty") }
            s.presencePenalty = p
        }
        if let p = frequency_penalty {
            guard p.isFinite, p >= -2, p <= 2 else { throw APIError.invalid("frequency_penalty must be between -2 and 2, got \(p)", param: "frequency_penalty") }
            s.frequencyPenalty = p
        }
        if let bias = logit_bias {
            for (key, b) in bias {
                guard let id = Int32(key), id >= 0, Int(id) < vocabularySize else {
                    throw APIError.invalid("logit_bias key '\(key)' is not a token id below \(vocabularySize)", param: "logit_bias")
                }
                guard b.isFinite, b >= -100, b <= 100 else {
                    throw APIError.invalid("logit_bias value for token \(key) must be between -100 and 100", param: "logit_bias")
                }
                // OpenAI: -100 bans the token.
                s.logitBias[id] = b <= -100 ? -.infinity : b
            }
        }
        s.seed = seed.map { UInt64(bitPattern: $0) }
        g.sampling = s
        let (limit, name) = max_completion_tokens.map { ($0, "max_completion_tokens") } ?? (max_tokens.map { ($0, "max_tokens") } ?? (nil, ""))
        if let limit {
            guard limit >= 1 else { throw APIError.invalid("\(name) must be ≥ 1, got \(limit)", param: name) }
            g.maxTokens = limit
        } else {
            // No limit: until an end token, a stop string, or a full context.
            g.maxTokens = contextLength
        }
        if let stop = stop?.values {
            guard stop.count <= GenerationParameters.maxStopStrings else {
                throw APIError.invalid("at most \(GenerationParameters.maxStopStrings) stop strings, got \(stop.count)", param: "stop")
            }
            guard stop.allSatisfy({ $0.utf8.count <= GenerationParameters.maxStopBytes }) else {
                throw APIError.invalid("a stop string may be at most \(GenerationParameters.maxStopBytes) bytes", param: "stop")
            }
            g.stop = stop.filter { !$0.isEmpty }
        }
        g.ignoreEOS = ignore_eos ?? false
        do { try g.validate() } catch let e as SamplingError { throw APIError.invalid(e.description, param: nil) }
        return g
    }

    /// How many choices (`n`), checked against what the server can ever hold at once.
    func choices(limit: Int) throws -> Int {
        let k = n ?? 1
        guard k >= 1 else { throw APIError.invalid("n must be ≥ 1, got \(k)", param: "n") }
        guard k <= limit else { throw APIError.invalid("n must be at most \(limit) (--parallel plus --queue), got \(k)", param: "n") }
        return k
    }
}

/// `input` of `/v1/embeddings`: a string, an array of strings, or token ids (one array or several).
enum EmbeddingInput: Decodable {
    case texts([String])
    case ids([[Int32]])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .texts([s]); return }
        if let a = try? c.decode([String].self) { self = .texts(a); return }
        if let ids = try? c.decode([Int32].self) { self = .ids([ids]); return }
        if let a = try? c.decode([[Int32]].self) { self = .ids(a); return }
        throw APIError.invalid("'input' must be a string, an array of strings, or token ids", param: "input")
    }
}

struct EmbeddingRequest: Decodable {
    var input: EmbeddingInput
    var model: String?
    var encoding_format: String?
    var dimensions: Int?
}
