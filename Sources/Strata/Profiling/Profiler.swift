import Dispatch
import Foundation

/// Records the time of every op the executor runs, tagged with the phase (prefill or decode).
/// Attach it as `InferenceContext.observer` only when profiling; without it nothing is timed.
public final class Profiler: ExecutionObserver {
    public enum Phase: String, Sendable, Codable, CaseIterable { case prefill, decode }

    public struct Event: Sendable {
        public let kind: OpKind
        public let layer: Int?
        public let phase: Phase
        public let rows: Int
        public let pairs: Int
        public let start: UInt64
        public let duration: UInt64
    }

    public var phase: Phase = .prefill
    public private(set) var events: [Event] = []

    public init(capacity: Int = 1 << 16) { events.reserveCapacity(capacity) }

    public func record(kind: OpKind, layer: Int?, rows: Int, pairs: Int, start: UInt64, duration: UInt64) {
        events.append(Event(kind: kind, layer: layer, phase: phase, rows: rows, pairs: pairs, start: start, duration: duration))
    }

    public func reset() { events.removeAll(keepingCapacity: true) }

    /// Floating-point operations of an event (GEMMs and attention), or nil.
    public static func flops(_ e: Event, config c: ModelConfig) -> Double? {
        let r = Double(e.rows), E = Double(c.embeddingLength)
        switch e.kind {
        case .attnQ: return 2 * r * E * Double(c.qDim)
        case .attnK, .attnV: return 2 * r * E * Double(c.kvDim)
        case .attnOutput: return 2 * r * Double(c.qDim) * E
        case .ffnGate, .ffnUp: return 2 * r * E * Double(c.feedForwardLength)
        case .ffnDown: return 2 * r * Double(c.feedForwardLength) * E
        case .attnScores, .attnValues: return 2 * Double(e.pairs) * Double(c.headDim) * Double(c.headCount)
        case .output: return 2 * r * E * Double(c.vocabSize)
        default: return nil
        }
    }

    /// Aggregates per op kind and phase.
    public struct Row: Sendable, Codable {
        public let op: String
        public let phase: Phase
        public let calls: Int
        public let totalMs: Double
        public let share: Double
        public let meanUs: Double
        public let gflops: Double?
    }

    public func summary(config: ModelConfig) -> [Row] {
        var total = [Phase: UInt64]()
        for e in events { total[e.phase, default: 0] += e.duration }
        var groups: [String: (Phase, Int, UInt64, Double, Bool)] = [:]
        for e in events {
            let key = e.phase.rawValue + "/" + e.kind.rawValue
            var g = groups[key] ?? (e.phase, 0, 0, 0, false)
            g.1 += 1
            g.2 += e.duration
            if let f = Self.flops(e, config: config) { g.3 += f; g.4 = true }
            groups[key] = g
        }
        return groups.map { key, g in
            let op = String(key.split(separator: "/")[1])
            let ms = Double(g.2) / 1e6
            return Row(op: op, phase: g.0, calls: g.1, totalMs: ms, share: Double(g.2) / Double(max(total[g.0] ?? 1, 1)),
                       meanUs: Double(g.2) / Double(g.1) / 1e3, gflops: g.4 && g.2 > 0 ? g.3 / Double(g.2) : nil)
        }.sorted { $0.phase.rawValue == $1.phase.rawValue ? $0.totalMs > $1.totalMs : $0.phase == .prefill }
    }

    /// Total ms per layer and op kind for a phase (layer -1 holds the ops outside the blocks).
    public func perLayer(_ phase: Phase) -> [Int: [OpKind: Double]] {
        var out: [Int: [OpKind: Double]] = [:]
        for e in events where e.phase == phase {
            out[e.layer ?? -1, default: [:]][e.kind, default: 0] += Double(e.duration) / 1e6
        }
        return out
    }

    public var totalNanoseconds: UInt64 { events.reduce(0) { $0 + $1.duration } }

    // MARK: - Exports

    /// Chrome / Perfetto trace: one complete ("X") event per op per layer, in microseconds.
    public func chromeTrace(label: String = "strata") throws -> Data {
        let t0 = events.map(\.start).min() ?? 0
        var list: [[String: Any]] = [["name": "process_name", "ph": "M", "pid": 1, "args": ["name": label]]]
        for e in events {
            let name = e.layer.map { "blk.\($0).\(e.kind.rawValue)" } ?? e.kind.rawValue
            list.append(["name": name, "cat": e.phase.rawValue + "," + e.kind.rawValue, "ph": "X", "pid": 1,
                         "tid": e.phase == .prefill ? 1 : 2,
                         "ts": Double(e.start - t0) / 1e3, "dur": Double(e.duration) / 1e3,
                         "args": ["layer": e.layer ?? -1, "rows": e.rows, "phase": e.phase.rawValue]])
        }
        return try JSONSerialization.data(withJSONObject: ["traceEvents": list, "displayTimeUnit": "ms"], options: [.sortedKeys])
    }

    /// An SVG chart: time per layer stacked by op kind, prefill and decode side by side.
    /// Each layer is one `<g class="layer">` per panel.
    public func svg(title: String, layers: Int) -> String {
        let kinds = OpKind.allCases
        let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                       "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
        let color = Dictionary(uniqueKeysWithValues: kinds.enumerated().map { ($0.element, palette[$0.offset % palette.count]) })
        let panelW = 520.0, panelH = 320.0, left = 60.0, top = 50.0, gap = 80.0
        let width = left + 2 * panelW + gap + 170, height = top + panelH + 60
        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
        <title>\(xml(title))</title>
        <text x="\(left)" y="22" font-size="15">\(xml(title))</text>

        """
        for (p, phase) in Phase.allCases.enumerated() {
            let data = perLayer(phase)
            let x0 = left + Double(p) * (panelW + gap)
            let maxTotal = max((0 ..< layers).map { data[$0]?.values.reduce(0, +) ?? 0 }.max() ?? 0, 1e-9)
            let barW = panelW / Double(max(layers, 1))
            s += "<g class=\"panel\" id=\"\(phase.rawValue)\">\n"
            s += "<text x=\"\(x0)\" y=\"\(top - 10)\" font-size=\"13\">\(phase.rawValue): ms per layer (max \(String(format: "%.3f", maxTotal)) ms)</text>\n"
            s += "<line x1=\"\(x0)\" y1=\"\(top + panelH)\" x2=\"\(x0 + panelW)\" y2=\"\(top + panelH)\" stroke=\"#333\"/>\n"
            for l in 0 ..< layers {
                var y = top + panelH
                s += "<g class=\"layer\" id=\"\(phase.rawValue)-blk.\(l)\">"
                for k in kinds {
                    guard let ms = data[l]?[k], ms > 0 else { continue }
                    let h = ms / maxTotal * panelH
                    y -= h
                    s += "<rect x=\"\(String(format: "%.1f", x0 + Double(l) * barW + 1))\" y=\"\(String(format: "%.2f", y))\" width=\"\(String(format: "%.1f", max(barW - 2, 1)))\" height=\"\(String(format: "%.2f", h))\" fill=\"\(color[k]!)\"><title>blk.\(l).\(k.rawValue): \(String(format: "%.4f", ms)) ms</title></rect>"
                }
                if l % 5 == 0 { s += "<text x=\"\(String(format: "%.1f", x0 + Double(l) * barW))\" y=\"\(top + panelH + 14)\">\(l)</text>" }
                s += "</g>\n"
            }
            s += "</g>\n"
        }
        let lx = left + 2 * panelW + gap + 10
        s += "<g class=\"legend\">\n"
        for (i, k) in kinds.enumerated() {
            s += "<rect x=\"\(lx)\" y=\"\(top + Double(i) * 16)\" width=\"10\" height=\"10\" fill=\"\(color[k]!)\"/><text x=\"\(lx + 14)\" y=\"\(top + Double(i) * 16 + 9)\">\(k.rawValue)</text>\n"
        }
        s += "</g>\n</svg>\n"
        return s
    }

    private func xml(_ s: String) -> String { xmlEscaped(s) }
}

/// Text safe inside an XML (SVG) element or attribute: & < > " escaped.
public func xmlEscaped(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
