//! What the integration suite (`tests/api`) and the benchmarks (`benches/`) reach below HTTP: starting the application in-process,
//! writing or reading rows directly, driving one worker at a time. It is not an API; it exists so
//! that the crate's modules can stay private (and what nothing uses is reported as dead code) while
//! the suite still tests the pieces on their own. Each path mirrors the module it comes from.

pub mod app {
    pub use crate::app::Application;
}

pub mod auth {
    pub use crate::auth::{Principal, TokenIssuer};
}

pub mod clock {
    pub use crate::clock::{Clock, now};
}

pub mod consumers {
    pub use crate::consumers::{ConsumerGroup, Consumers, Outcome};

    pub mod delivery {
        pub use crate::consumers::delivery::DeliveryWorker;
    }

    pub mod kafka {
        pub use crate::consumers::kafka::{DLQ_ERROR_HEADER, KafkaConsumer, dlq_topic};
    }
}

pub mod context {
    pub use crate::context::RequestContext;
}

pub mod domain {
    pub use crate::domain::{
        Appointment, AppointmentId, AppointmentStatus, PatientId, PractitionerId, Role, TimeSlot, UserId,
    };

    pub mod appointment {
        pub use crate::domain::appointment::StoredAppointment;
    }
}

pub mod error {
    pub use crate::error::ProblemCode;
}

pub mod events {
    pub use crate::events::{Envelope, EventType, NewEvent, patient, patient_updated};

    pub mod envelope {
        pub use crate::events::envelope::Metadata;
    }

    pub mod kafka {
        pub use crate::events::kafka::{TopicClass, ensure_named_topics, headers};
    }
}

pub mod http {
    pub use crate::http::openapi;
}

pub mod jobs {
    pub use crate::jobs::{Job, RunOutcome, Scheduler};
}

pub mod relay {
    pub use crate::relay::Relay;
}

pub mod service {
    pub mod users {
        pub use crate::service::users::{FirstAdmin, create, ensure_first_admin};
    }
}

pub mod shutdown {
    pub use crate::shutdown::{Shutdown, Stop, channel};
}

pub mod store {
    pub use crate::store::{Backend, DbLimits, PageRequest, Store, entities};

    pub mod appointments {
        pub use crate::store::appointments::{BookingRefused, Clash, booking, booking_refused, insert, update};
    }

    pub mod audit {
        pub use crate::store::audit::{AuditFilter, list};
    }

    pub mod consumers {
        pub use crate::store::consumers::{DeadLetter, add_dead_letter, dead_letters};
    }

    pub mod idempotency {
        pub use crate::store::idempotency::{StoredResource, claim, complete};
    }

    pub mod jobs {
        pub use crate::store::jobs::last_run;
    }

    pub mod outbox {
        pub use crate::store::outbox::*;
    }

    pub mod patients {
        pub use crate::store::patients::{PatientFilter, find, find_for_update, list};
    }
}

pub mod telemetry {
    pub use crate::telemetry::{LogFormat, try_init};

    pub mod metrics {
        pub use crate::telemetry::metrics::{
            ConsumerLabels, EventTypeLabels, Metrics, QueryLabels, RequestLabels, RouteLabels, classify_sql,
        };
    }
}
