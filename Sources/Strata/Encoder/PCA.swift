import COpenBLAS

/// Principal component analysis of a few hundred vectors, for drawing embeddings on a plane:
/// the rows are centred, their covariance (d × d, float32 accumulated by sgemm) is decomposed
/// with LAPACK's symmetric eigensolver (`ssyevd`), and each row is projected on the eigenvectors
/// of the largest eigenvalues. Each component's sign is fixed so its largest-magnitude loading is
/// positive (eigenvectors are defined up to sign).
public enum PCA {
    public struct Result: Sendable {
        /// `[row][component]` coordinates.
        public let points: [[Float]]
        /// `[component][dimension]` unit directions.
        public let components: [[Float]]
        /// Variance along each component.
        public let variances: [Float]
    }

    public enum PCAError: Error, CustomStringConvertible {
        case shape(String)
        case lapack(Int32)
        public var description: String {
            switch self {
            case let .shape(s): return "PCA: \(s)"
            case let .lapack(info): return "PCA: LAPACK ssyevd failed (info \(info))"
            }
        }
    }

    public static func project(_ rows: [[Float]], components k: Int = 2) throws -> Result {
        guard let d = rows.first?.count, d > 0, rows.count >= 2 else { throw PCAError.shape("needs at least two vectors") }
        guard rows.allSatisfy({ $0.count == d }) else { throw PCAError.shape("vectors of different lengths") }
        guard k >= 1, k <= d else { throw PCAError.shape("components must be between 1 and \(d)") }
        let n = rows.count
        var mean = [Float](repeating: 0, count: d)
        for r in rows { for j in 0 ..< d { mean[j] += r[j] } }
        for j in 0 ..< d { mean[j] /= Float(n) }
        var x = [Float](repeating: 0, count: n * d)
        for (i, r) in rows.enumerated() { for j in 0 ..< d { x[i * d + j] = r[j] - mean[j] } }
        // Covariance C = XᵀX / (n − 1), row-major d × d (symmetric).
        var c = [Float](repeating: 0, count: d * d)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(d), Int32(d), Int32(n), 1 / Float(n - 1),
                    x, Int32(d), x, Int32(d), 0, &c, Int32(d))
        // Eigenvalues ascending; eigenvectors in the columns of c (row-major: c[i*d + j] = v_j[i]).
        var w = [Float](repeating: 0, count: d)
        let info = LAPACKE_ssyevd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "U")), Int32(d), &c, Int32(d), &w)
        guard info == 0 else { throw PCAError.lapack(info) }
        var comps: [[Float]] = []
        var vars: [Float] = []
        for t in 0 ..< k {
            let col = d - 1 - t
            var v = (0 ..< d).map { c[$0 * d + col] }
            if let big = v.indices.max(by: { abs(v[$0]) < abs(v[$1]) }), v[big] < 0 { v = v.map { -$0 } }
            comps.append(v)
            vars.append(w[col])
        }
        let points = (0 ..< n).map { i in comps.map { v in (0 ..< d).reduce(Float(0)) { $0 + x[i * d + $1] * v[$1] } } }
        return Result(points: points, components: comps, variances: vars)
    }
}
