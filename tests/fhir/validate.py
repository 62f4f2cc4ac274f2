"""Validates FHIR resources with an implementation no one here wrote: the strict R4B models of
`fhir.resources` (PyPI), which refuse unknown elements, wrong types and missing required ones.
They do not check required code bindings, nor FHIR JSON's rule that an element is never an empty
array, null or empty string, so those are checked here (the bindings from the FHIR value sets).

Input: one JSON resource per line on stdin. Output: one line per invalid resource; exit 1 if any.
"""

import json
import sys

from fhir.resources.R4B import get_fhir_model_class

# Required bindings of the elements HealthCore writes (FHIR R4 value sets; R4B for notifications).
BINDINGS = {
    "Patient": [("gender", {"male", "female", "other", "unknown"})],
    "Appointment": [("status", {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
                                "noshow", "entered-in-error", "checked-in", "waitlist"})],
    "AuditEvent": [("action", {"C", "R", "U", "D", "E"}), ("outcome", {"0", "4", "8", "12"})],
    "Bundle": [("type", {"document", "message", "transaction", "transaction-response", "batch",
                         "batch-response", "history", "searchset", "collection", "subscription-notification"})],
    "SubscriptionStatus": [("status", {"requested", "active", "error", "off", "entered-in-error"}),
                           ("type", {"handshake", "heartbeat", "event-notification", "query-status",
                                     "query-event"})],
    "CapabilityStatement": [("status", {"draft", "active", "retired", "unknown"}),
                            ("kind", {"instance", "capability", "requirements"})],
}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}


def json_rule_errors(value, path):
    """FHIR's JSON rules the models let through: no empty arrays, no nulls, no empty strings."""
    if value is None or value == "" or value == []:
        return [f"{path} is {json.dumps(value)}: FHIR JSON leaves an empty element out"]
    if isinstance(value, dict):
        return [e for key, item in value.items() for e in json_rule_errors(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in json_rule_errors(item, f"{path}[{i}]")]
    return []


def binding_errors(resource):
    kind = resource.get("resourceType")
    errors = [f"{kind}.{element} = {resource.get(element)!r} is not in its value set"
              for element, codes in BINDINGS.get(kind, []) if element in resource and resource[element] not in codes]
    if kind == "OperationOutcome":
        errors += [f"OperationOutcome.issue.severity {i.get('severity')!r}" for i in resource.get("issue", [])
                   if i.get("severity") not in ISSUE_SEVERITY]
    for entry in resource.get("entry", []) if kind == "Bundle" else []:
        errors += binding_errors(entry.get("resource", {}))
    return errors


def main():
    failures = 0
    for number, line in enumerate(sys.stdin, 1):
        resource = json.loads(line)
        kind = resource.get("resourceType", "")
        try:
            get_fhir_model_class(kind).model_validate(resource)
            problems = binding_errors(resource) + json_rule_errors(resource, kind)
        except Exception as error:  # the model's validation error, or an unknown resourceType
            problems = [str(error)]
        for problem in problems:
            failures += 1
            print(f"resource {number} ({kind}): {problem}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
