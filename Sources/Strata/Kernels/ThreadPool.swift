import Dispatch
import Foundation
import Synchronization
import CSpin

/// Strata's own worker threads for the `simd` backend: one parallel region per matrix multiply or
/// attention step, a few hundred per forward step, so a region must start in well under a
/// microsecond. Dispatch's `concurrentPerform` wakes sleeping threads for every region (tens of
/// microseconds here); these workers spin on a generation counter between regions and go to sleep
/// only after `spinTime` idle, so an idle process does not burn its cores.
///
/// One process-wide pool (`shared`), as OpenBLAS has: regions from different threads (two
/// contexts used at once) take turns through `regionLock`. Nothing is allocated per region: the
/// body is a non-escaping closure, handed to the workers for the length of the call only.
final class ThreadPool: @unchecked Sendable {
    /// Threads taking part in a region, the calling thread included.
    let width: Int

    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let wake = NSCondition()
    private let regionLock = NSLock()
    /// Set by `run` before `generation` is bumped, cleared after every worker has finished.
    nonisolated(unsafe) private var body: ((Int, Int) -> Void)?
    nonisolated(unsafe) private var parts = 0

    /// Idle time before a worker sleeps, or before a caller waiting for the workers yields its
    /// core: long enough to bridge the sampler and bookkeeping between forward steps, short enough
    /// not to hold a core when idle. Measured by the clock, read every `clockPolls` polls, since
    /// a poll's spin-wait hint lasts from a few cycles (ARM `yield`, older x86 `pause`) to over a
    /// hundred (recent Intel `pause`).
    private static let spinTime: UInt64 = 100_000   // nanoseconds
    private static let clockPolls = 256

    /// Polls until the caller has spun `spinTime`; `since` is 0 when the wait starts.
    @inline(__always)
    private static func spunOut(_ polls: inout Int, since: inout UInt64) -> Bool {
        polls &+= 1
        strata_spin_pause()
        guard polls % clockPolls == 0 else { return false }
        let now = DispatchTime.now().uptimeNanoseconds
        if since == 0 { since = now; return false }
        return now &- since >= spinTime
    }

    init(width: Int) {
        precondition(width >= 1)
        self.width = width
        for w in 1 ..< width {
            let thread = Thread { [unowned self] in self.work(worker: w) }
            thread.name = "strata-worker-\(w)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// One pool per process, as wide as the machine (`STRATA_THREADS` overrides). Contexts that ask
    /// for fewer threads use part of it.
    static let shared = ThreadPool(width: defaultWidth)

    static var defaultWidth: Int {
        if let s = ProcessInfo.processInfo.environment["STRATA_THREADS"], let n = Int(s), n >= 1, n <= 1024 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body(part, parts)` for `part` in `0 ..< parts`, `parts ≤ width`, part 0 on the
    /// calling thread; returns when all are done. Not re-entrant: a body must not start a region.
    /// Every worker checks in for every region, also those without a part, so a context using
    /// fewer threads than the pool still wakes all of it.
    func run(parts requested: Int, _ body: (Int, Int) -> Void) {
        let n = min(max(requested, 1), width)
        if n == 1 { body(0, 1); return }
        regionLock.lock()
        defer { regionLock.unlock() }
        withoutActuallyEscaping(body) { body in
            self.body = body
            self.parts = n
            finished.store(0, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock(); wake.broadcast(); wake.unlock()
            }
            body(0, n)
            // Every worker checks in, even those without a part, so none still reads `body`. On an
            // oversubscribed machine a worker may be descheduled: after a while, give up the core.
            var polls = 0, since: UInt64 = 0
            while finished.load(ordering: .acquiring) < width - 1 {
                if Self.spunOut(&polls, since: &since) { sched_yield(); since = 0 }
            }
            self.body = nil
        }
    }

    private func work(worker w: Int) {
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            var polls = 0, since: UInt64 = 0
            while g == seen {
                if Self.spunOut(&polls, since: &since) {
                    wake.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    wake.unlock()
                    since = 0
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            let n = parts
            if w < n, let body { body(w, n) }
            finished.add(1, ordering: .releasing)
        }
    }
}
