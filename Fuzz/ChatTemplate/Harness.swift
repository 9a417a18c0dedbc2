// libFuzzer harness: chat-template detection and rendering of arbitrary messages, then encoding.
// Built by `make fuzz` (STRATA_FUZZ=1, -sanitize=fuzzer,address, -parse-as-library). The work is
// `FuzzTargets` in the library, which `make test` replays over Tests/Fuzz/seeds and
// Tests/Fuzz/regressions.
import CFuzz
import Foundation
import Strata

/// The default model's tokenizer, loaded once.
let tokenizer = FuzzTargets.defaultModelTokenizer()

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
