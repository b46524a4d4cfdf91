// Package loadgen is the load generator behind `sendguard-bench`: it starts (or
// targets) a server, seeds it with numbers that carry realistic history, runs each
// workload and its no-op baseline for a bounded time and concurrency in the same
// run, and reports throughput, latency percentiles and the ratio to the baseline
// against the targets of issue 6 (docs/performance.md).
package loadgen
