/// Comparisons that a NaN cannot slip through. `Sequence.max()` and `Swift.max` pass a NaN over
/// (`[0.1, .nan].max()` is 0.1), and `abs(d) > tol` is false for a NaN, so a kernel writing NaN
/// could pass a tolerance check built on them; these give NaN instead, which fails `x <= tol`.
extension Sequence where Element: FloatingPoint {
    /// The largest element, NaN if any element is NaN, nil if there is none.
    func maxOrNaN() -> Element? {
        var m: Element?
        for x in self {
            if x.isNaN { return .nan }
            if m.map({ x > $0 }) ?? true { m = x }
        }
        return m
    }
}

/// The larger of two differences, NaN if either is.
func worse<T: FloatingPoint>(_ a: T, _ b: T) -> T { a.isNaN || b.isNaN ? .nan : max(a, b) }
