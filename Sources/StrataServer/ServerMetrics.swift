import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The server's Prometheus metrics, made through swift-metrics on a registry of its own (no global
/// bootstrap) and written in Prometheus's text format at `GET /metrics`.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    /// Sequences holding a slot (one per choice of a request) and sequences waiting for one.
    let processing: CoreMetrics.Gauge
    let queued: CoreMetrics.Gauge
    /// Positions held in the KV cache over all positions (idle slots' reusable prefixes included).
    let kvCacheUsage: CoreMetrics.Gauge
    let rejected: CoreMetrics.Counter
    let promptTokens: CoreMetrics.Counter
    let promptCachedTokens: CoreMetrics.Counter
    /// Prompt tokens actually run through the model (counted by the batch runner's steps).
    let promptComputedTokens: CoreMetrics.Counter
    let generatedTokens: CoreMetrics.Counter
    /// Forward steps of the continuous batch (with the generated tokens: how many shared a step).
    let steps: CoreMetrics.Counter
    let timeToFirstToken: CoreMetrics.Timer
    let timePerOutputToken: CoreMetrics.Timer

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets["strata_time_to_first_token_seconds"] =
            [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60].map { Duration.milliseconds(Int64($0 * 1000)) }
        f.durationHistogramBuckets["strata_time_per_output_token_seconds"] =
            [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5].map { Duration.microseconds(Int64($0 * 1_000_000)) }
        factory = f
        processing = CoreMetrics.Gauge(label: "strata_requests_processing", factory: f)
        queued = CoreMetrics.Gauge(label: "strata_requests_queued", factory: f)
        kvCacheUsage = CoreMetrics.Gauge(label: "strata_kv_cache_usage_ratio", factory: f)
        rejected = CoreMetrics.Counter(label: "strata_requests_rejected_total", factory: f)
        promptTokens = CoreMetrics.Counter(label: "strata_prompt_tokens_total", factory: f)
        promptCachedTokens = CoreMetrics.Counter(label: "strata_prompt_cached_tokens_total", factory: f)
        promptComputedTokens = CoreMetrics.Counter(label: "strata_prompt_computed_tokens_total", factory: f)
        generatedTokens = CoreMetrics.Counter(label: "strata_generated_tokens_total", factory: f)
        steps = CoreMetrics.Counter(label: "strata_batch_steps_total", factory: f)
        timeToFirstToken = CoreMetrics.Timer(label: "strata_time_to_first_token_seconds", factory: f)
        timePerOutputToken = CoreMetrics.Timer(label: "strata_time_per_output_token_seconds", factory: f)
        processing.record(0)
        queued.record(0)
        kvCacheUsage.record(0)
    }

    /// Counts a finished HTTP request by its status code.
    func request(status: Int) {
        CoreMetrics.Counter(label: "strata_requests_total", dimensions: [("status", String(status))], factory: factory).increment()
    }

    func text() -> String { registry.emitToString() }
}
