//! The background jobs: runs by outcome, their duration, the last success.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::{Histograms, metric_group};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Not `job`: Prometheus sets that label to the scrape job.
    pub job_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    pub job_name: &'static str,
    pub outcome: &'static str,
}

fn job_histogram() -> Histogram {
    // 1 ms … 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

metric_group! {
    pub struct JobMetrics {
        /// Background job attempts by job and outcome (succeeded, retried, failed, unclaimed)
        "job_runs" runs: Family<JobOutcomeLabels, Counter> = Family::default(),
        /// Duration of one attempt of a background job
        "job_duration_seconds" duration: Histograms<JobLabels> = Family::new_with_constructor(job_histogram),
        /// When each background job last succeeded in this process (Unix time)
        "job_last_success_timestamp_seconds" last_success: Family<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default(),
    }
}
