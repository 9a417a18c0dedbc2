import Strata
import Foundation
let m = try Model(path: Model.defaultModelPath)
print(m.config)
for be in [Backend.blas, .naive] {
let ctx = try InferenceContext(model: m, options: ContextOptions(backend: be, contextLength: 256))
let t0 = Date()
try ctx.prefill([504, 3575, 282, 4649, 314].map(Int32.init))
let l = ctx.logits(row: 0)
let top = l.enumerated().sorted { $0.element > $1.element }.prefix(5)
print(be, top.map { "\($0.offset):\($0.element)" }, Date().timeIntervalSince(t0))
}
