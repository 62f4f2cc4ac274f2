//! Kafka's IncrementalAlterConfigs (KIP-339), which the rdkafka crate does not wrap: it wraps only
//! the older AlterConfigs, which replaces every dynamic setting of a topic (so an operator's own
//! settings would be lost) and which some Kafka-protocol brokers (tansu) refuse. This is the crate's
//! second `unsafe` code, kept to one function over librdkafka's C API: every pointer it creates is
//! destroyed before it returns, and the one wait is bounded.
#![expect(unsafe_code, reason = "librdkafka's IncrementalAlterConfigs has no safe wrapper in rdkafka")]

use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

/// Sets the given configuration entries of each topic, leaving its other settings as they are.
/// Blocks for up to `timeout` plus a second: call it off the async runtime.
pub fn set_topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    changes: &[(String, Vec<(&'static str, String)>)],
    timeout: Duration,
) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let rk = admin.inner().native_ptr();
    // SAFETY: `rk` is the admin client's live handle for the whole call (`admin` is borrowed).
    // Each resource, the options, the queue and the event are created here and destroyed on every
    // path below; librdkafka copies the resources and options when the request is enqueued, and the
    // result's resources belong to the event, read before it is destroyed.
    unsafe {
        let mut resources = Vec::with_capacity(changes.len());
        let destroy = |resources: &mut Vec<*mut rd::rd_kafka_ConfigResource_t>| {
            for resource in resources.drain(..) {
                rd::rd_kafka_ConfigResource_destroy(resource);
            }
        };
        for (topic, entries) in changes {
            let resource = rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                c(topic)?.as_ptr(),
            );
            resources.push(resource);
            for (name, value) in entries {
                let (name, value) = match (c(name), c(value)) {
                    (Ok(name), Ok(value)) => (name, value),
                    (Err(e), _) | (_, Err(e)) => {
                        destroy(&mut resources);
                        return Err(e);
                    }
                };
                let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                    resource,
                    name.as_ptr(),
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    value.as_ptr(),
                );
                if !error.is_null() {
                    let message = text(rd::rd_kafka_error_string(error));
                    rd::rd_kafka_error_destroy(error);
                    destroy(&mut resources);
                    return Err(message);
                }
            }
        }
        let options =
            rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS);
        let mut error_text = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, error_text.as_mut_ptr(), error_text.len());
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), resources.len(), options, queue);
        destroy(&mut resources);
        rd::rd_kafka_AdminOptions_destroy(options);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1000));
        let outcome = if event.is_null() {
            Err(format!("no answer within {timeout:?}"))
        } else {
            let outcome = outcome_of(event);
            rd::rd_kafka_event_destroy(event);
            outcome
        };
        rd::rd_kafka_queue_destroy(queue);
        outcome
    }
}

/// The request's error, else each topic's.
///
/// # Safety
/// `event` is a live IncrementalAlterConfigs result event.
unsafe fn outcome_of(event: *mut rd::rd_kafka_event_t) -> Result<(), String> {
    // SAFETY: the caller's contract; every pointer read here belongs to `event`.
    unsafe {
        if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(text(rd::rd_kafka_event_error_string(event)));
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
        if result.is_null() {
            return Err("the broker's answer was not an IncrementalAlterConfigs result".to_owned());
        }
        let mut count = 0;
        let resources = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        let mut failures = Vec::new();
        for index in 0..count {
            let resource = *resources.add(index);
            if rd::rd_kafka_ConfigResource_error(resource) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let name = text(rd::rd_kafka_ConfigResource_name(resource));
                failures.push(format!("{name}: {}", text(rd::rd_kafka_ConfigResource_error_string(resource))));
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }
}

/// A C string librdkafka owns, copied (empty for null).
///
/// # Safety
/// `text` is null or a NUL-terminated string alive for the call.
unsafe fn text(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}
