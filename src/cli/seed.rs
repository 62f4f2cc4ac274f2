//! `healthcore seed`: realistic demo data, created through the same use cases as the API so every
//! rule (validation, overlap, audit) holds for it too.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Timelike};
use rand::{Rng, seq::IndexedRandom};
use uuid::Uuid;

use crate::app;
use crate::auth::Principal;
use crate::config::Config;
use crate::context::RequestContext;
use crate::domain::appointment::BookingInput;
use crate::domain::patient::PatientInput;
use crate::domain::practitioner::PractitionerInput;
use crate::domain::{Role, UserId};
use crate::error::AppError;
use crate::service;

use super::progress::bar;

const GIVEN: &[&str] = &[
    "Amara", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jun", "Kofi", "Lena", "Mateo",
    "Nia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zofia",
];
const FAMILY: &[&str] = &[
    "Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ivanova", "Jensen", "Kowalski",
    "Larsen", "Mensah", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga",
    "Walsh", "Xu", "Yilmaz", "Zhang",
];
const SPECIALTIES: &[&str] =
    &["cardiology", "dermatology", "family medicine", "paediatrics", "physiotherapy", "radiology"];
const REASONS: &[&str] =
    &["annual check-up", "follow-up", "vaccination", "blood test", "consultation", "physiotherapy session"];

pub async fn run(config: Config, patients: u32, practitioners: u32, appointments: u32) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics: std::sync::Arc<crate::telemetry::metrics::Metrics> = Default::default();
    let store = app::open_store(&config, &metrics).await?;
    let (state, audit_writer) = app::build_state(config, store, metrics).await?;
    // The seed acts as a system administrator; its audit records carry the nil actor id.
    let ctx = RequestContext {
        principal: Principal { user_id: UserId::from_uuid(Uuid::nil()), role: Role::Admin, patient_id: None },
        clock: state.clock.clone(),
        correlation_id: format!("seed-{}", Uuid::new_v4()),
        client_addr: None,
        user_agent: Some("healthcore seed".into()),
        attempt: Default::default(),
    };
    let mut rng = rand::rng();

    let progress = bar(u64::from(practitioners), "practitioners");
    let mut practitioner_ids = Vec::new();
    for _ in 0..practitioners {
        let role =
            *["physician", "physician", "nurse", "therapist", "technician"].choose(&mut rng).unwrap_or(&"physician");
        let input = PractitionerInput {
            licence_number: Some(format!("LIC-{:08}", rng.random_range(0..100_000_000))),
            given_name: Some((*GIVEN.choose(&mut rng).unwrap_or(&"Alex")).into()),
            family_name: Some((*FAMILY.choose(&mut rng).unwrap_or(&"Smith")).into()),
            role: Some(role.into()),
            specialty: SPECIALTIES.choose(&mut rng).map(|s| (*s).into()),
        };
        match service::practitioners::create(&state, &ctx, input, None).await {
            Ok(p) => practitioner_ids.push(p.id),
            Err(AppError::Conflict { .. }) => {} // a random licence number collided; skip it
            Err(err) => return Err(anyhow::anyhow!("creating a practitioner failed: {err}")),
        }
        progress.inc(1);
    }
    progress.finish();

    let progress = bar(u64::from(patients), "patients");
    let mut patient_ids = Vec::new();
    for _ in 0..patients {
        let given = *GIVEN.choose(&mut rng).unwrap_or(&"Alex");
        let family = *FAMILY.choose(&mut rng).unwrap_or(&"Smith");
        let birth =
            NaiveDate::from_ymd_opt(rng.random_range(1935..2024), rng.random_range(1..=12), rng.random_range(1..=28))
                .unwrap_or_default();
        let input = PatientInput {
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            birth_date: Some(birth.to_string()),
            sex: Some((*["female", "male", "other", "unknown"].choose(&mut rng).unwrap_or(&"unknown")).into()),
            email: Some(
                format!("{}.{}{}@example.org", given.to_lowercase(), family.to_lowercase(), rng.random_range(1..999))
                    .replace(['é', 'í'], "e"),
            ),
            phone: Some(format!("+1 555 {:04}", rng.random_range(0..10_000))),
            address: None,
        };
        let patient = service::patients::register(&state, &ctx, input, None)
            .await
            .map_err(|e| anyhow::anyhow!("creating a patient failed: {e}"))?;
        patient_ids.push(patient.id);
        progress.inc(1);
    }
    progress.finish();

    let progress = bar(u64::from(appointments), "appointments");
    let mut booked = 0;
    if !patient_ids.is_empty() && !practitioner_ids.is_empty() {
        let base = (crate::clock::now() + Duration::days(1))
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .unwrap_or_else(crate::clock::now);
        let mut attempts = 0;
        while booked < appointments && attempts < appointments.saturating_mul(10) {
            attempts += 1;
            let start =
                base + Duration::hours(rng.random_range(0..24 * 60)) + Duration::minutes(30 * rng.random_range(0..2));
            let input = BookingInput {
                patient_id: patient_ids.choose(&mut rng).copied(),
                practitioner_id: practitioner_ids.choose(&mut rng).copied(),
                start: Some(start),
                end: Some(start + Duration::minutes(30)),
                reason: REASONS.choose(&mut rng).map(|s| (*s).into()),
                notes: None,
            };
            match service::appointments::book(&state, &ctx, input, None).await {
                Ok(_) => {
                    booked += 1;
                    progress.inc(1);
                }
                Err(AppError::Conflict { .. }) => {} // that slot was taken; try another
                Err(err) => return Err(anyhow::anyhow!("booking failed: {err}")),
            }
        }
    }
    progress.finish();
    drop(state);
    let _ = audit_writer.await;
    println!(
        "seeded {} practitioners, {} patients, {} appointments",
        practitioner_ids.len(),
        patient_ids.len(),
        booked
    );
    Ok(())
}
