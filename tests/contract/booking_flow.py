"""The README's booking flow, through a client generated from the served OpenAPI document.

tests/api/contract.rs generates the client with openapi-python-client (a generator no one here
wrote) into a folder named `healthcore_client` and runs this script with the python that has the
client's libraries. Every call goes through the generated functions and models; a response the
document does not describe makes the client raise (`raise_on_unexpected_status`). The script prints
what it did as one JSON object for the test to compare with the server.

Usage: booking_flow.py BASE_URL ADMIN_PASSWORD
"""

import datetime
import json
import sys

from healthcore_client import AuthenticatedClient, Client
from healthcore_client.api.appointments import book_appointment, cancel_appointment, get_appointment
from healthcore_client.api.auth import issue_token
from healthcore_client.api.patients import create_patient
from healthcore_client.api.practitioners import create_practitioner
from healthcore_client.api.users import create_user
from healthcore_client.models import (
    Appointment,
    AppointmentStatus,
    BookingInput,
    CancelInput,
    Patient,
    PatientInput,
    PractitionerInput,
    PractitionerRole,
    Problem,
    Role,
    Sex,
    TokenRequest,
    UserInput,
)


def sign_in(base_url, username, password):
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    token = issue_token.sync(client=anonymous, body=TokenRequest(username=username, password=password))
    assert not isinstance(token, Problem), token
    return AuthenticatedClient(base_url=base_url, token=token.access_token, raise_on_unexpected_status=True)


def main(base_url, admin_password):
    admin = sign_in(base_url, "admin", admin_password)
    desk_user = create_user.sync(
        client=admin,
        body=UserInput(username="frontdesk", role=Role.RECEPTIONIST, password="front-desk-password"),
    )
    assert not isinstance(desk_user, Problem), desk_user
    desk = sign_in(base_url, "frontdesk", "front-desk-password")

    # Practitioners are managed by admins.
    practitioner = create_practitioner.sync(
        client=admin,
        body=PractitionerInput(
            licence_number="MD-1001",
            given_name="Gregory",
            family_name="House",
            role=PractitionerRole.PHYSICIAN,
            specialty="diagnostics",
        ),
    )
    assert not isinstance(practitioner, Problem), practitioner

    # Register a patient; the Idempotency-Key makes a retried POST safe.
    registration = PatientInput(
        given_name="Ada",
        family_name="Lovelace",
        birth_date=datetime.date(1990, 12, 10),
        sex=Sex.FEMALE,
        email="ada@example.org",
    )
    patient = create_patient.sync(client=desk, body=registration, idempotency_key="registration-0001")
    assert isinstance(patient, Patient), patient
    retried = create_patient.sync(client=desk, body=registration, idempotency_key="registration-0001")
    assert isinstance(retried, Patient) and retried.id == patient.id, retried

    # Book 09:00–09:30 on 15 January 2030.
    start = datetime.datetime(2030, 1, 15, 9, 0, tzinfo=datetime.timezone.utc)
    booking = BookingInput(
        patient_id=patient.id,
        practitioner_id=practitioner.id,
        start=start,
        end=start + datetime.timedelta(minutes=30),
        reason="annual check-up",
    )
    appointment = book_appointment.sync(client=desk, body=booking)
    assert isinstance(appointment, Appointment), appointment

    # An overlapping booking for the same practitioner is refused: 409 double-booking.
    overlapping = BookingInput(
        patient_id=patient.id,
        practitioner_id=practitioner.id,
        start=start + datetime.timedelta(minutes=15),
        end=start + datetime.timedelta(minutes=45),
        reason="second opinion",
    )
    refused = book_appointment.sync_detailed(client=desk, body=overlapping)
    assert isinstance(refused.parsed, Problem), refused

    # Read, then cancel (a reason is required), naming the version read.
    read = get_appointment.sync(appointment.id, client=desk)
    assert isinstance(read, Appointment), read
    cancelled = cancel_appointment.sync(
        appointment.id,
        client=desk,
        body=CancelInput(reason="patient is travelling"),
        if_match=f'W/"{read.version}"',
    )
    assert isinstance(cancelled, Appointment), cancelled
    assert cancelled.status == AppointmentStatus.CANCELLED, cancelled.status

    print(
        json.dumps(
            {
                "patient_id": str(patient.id),
                "practitioner_id": str(practitioner.id),
                "appointment_id": str(appointment.id),
                "booked_start": read.start.isoformat(),
                "overlap_status": int(refused.status_code),
                "overlap_type": refused.parsed.type_,
                "status": cancelled.status.value,
                "cancellation_reason": cancelled.cancellation_reason,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
