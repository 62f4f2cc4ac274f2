//! What the use cases did: registrations, bookings and their outcomes, sign-ins.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::metric_group;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

metric_group! {
    pub struct DomainMetrics {
        /// Patients registered (the ADR's patients_created_total)
        "patients_created" patients_created: Counter = Counter::default(),
        /// Appointments booked
        "appointments_booked" appointments_booked: Counter = Counter::default(),
        /// Appointments cancelled
        "appointments_cancelled" appointments_cancelled: Counter = Counter::default(),
        /// Appointments completed
        "appointments_completed" appointments_completed: Counter = Counter::default(),
        /// Appointments marked no-show
        "appointments_no_show" appointments_no_show: Counter = Counter::default(),
        /// Sign-in attempts by outcome (success, failure, throttled, busy)
        "logins" logins: Family<OutcomeLabels, Counter> = Family::default(),
        /// Sign-in lockouts started by repeated failures, by scope (account, address)
        "login_lockouts" login_lockouts: Family<ScopeLabels, Counter> = Family::default(),
    }
}
