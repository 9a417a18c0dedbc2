// libFuzzer harness: chat-template detection and rendering of arbitrary messages, then encoding.
// Built by `make fuzz` (STRATA_FUZZ=1, -sanitize=fuzzer,address, -parse-as-library). The work is
// `FuzzTargets` in the library, which `make test` replays over Tests/Fuzz/seeds and
// Tests/Fuzz/regressions.
import CFuzz
import Foundation
import Strata

/// The default model's tokenizer (49,152 tokens, 48,900 merges), loaded once.
let tokenizer: Tokenizer = {
    do { return try Tokenizer(gguf: GGUFFile(path: Model.resolvePath(nil))) } catch {
        FileHandle.standardError.write(Data("fuzz: cannot load the default model's tokenizer: \(error)\n".utf8))
        exit(2)
    }
}()

/// The program's entry point (SwiftPM's name for `main`): libFuzzer's driver with our callback.
@_cdecl("FuzzChatTemplate_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc, argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTargets.chatTemplate(UnsafeRawBufferPointer(start: data, count: size), tokenizer: tokenizer)
    return 0
}
