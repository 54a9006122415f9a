//! Hands a message without headers to librdkafka with no allocation on the Rust side.
//!
//! rdkafka's `BaseProducer::send` makes a `CString` of the topic name for every message.
//! Kafka topic names are at most 249 ASCII bytes, so the name fits a NUL-terminated buffer on
//! the stack, and the message goes to librdkafka's `rd_kafka_produceva` with the arguments
//! `send` gives `rd_kafka_producev`: topic, partition (or unassigned), `RD_KAFKA_MSG_F_COPY`,
//! value, key, timestamp (0: now) and no opaque. Messages with headers (whose native list
//! rdkafka does not expose) and names that do not fit go through `send`.

use std::ffi::{CStr, c_void};

use rdkafka::bindings::{
    RD_KAFKA_MSG_F_COPY, rd_kafka_error_code, rd_kafka_error_destroy, rd_kafka_produceva, rd_kafka_vtype_t,
    rd_kafka_vu_s__bindgen_ty_1, rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1, rd_kafka_vu_t,
};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// librdkafka's `RD_KAFKA_PARTITION_UA`: let the partitioner choose (not in the bindings).
const UNASSIGNED_PARTITION: i32 = -1;

/// Room for the longest topic name Kafka allows (249) and its NUL.
const NAME_BUFFER: usize = 256;

/// One message to produce, its bytes borrowed.
pub(crate) struct Record<'a> {
    pub(crate) topic: &'a str,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) partition: Option<i32>,
    pub(crate) timestamp: Option<i64>,
}

fn entry(vtype: rd_kafka_vtype_t, u: rd_kafka_vu_s__bindgen_ty_1) -> rd_kafka_vu_t {
    rd_kafka_vu_t { vtype, u }
}

/// A key or value; a missing one is a NULL pointer (a null key, a tombstone), as in `send`.
fn bytes(vtype: rd_kafka_vtype_t, b: Option<&[u8]>) -> rd_kafka_vu_t {
    entry(
        vtype,
        rd_kafka_vu_s__bindgen_ty_1 {
            mem: rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                // librdkafka only reads it (RD_KAFKA_MSG_F_COPY); the C API is not const.
                ptr: b.map_or(std::ptr::null_mut(), |b| b.as_ptr() as *mut c_void),
                size: b.map_or(0, <[u8]>::len),
            },
        },
    )
}

/// Produces `record` (librdkafka copies its bytes before returning); `None` when the topic
/// name does not fit the stack buffer or holds a NUL, for the caller to use `send`.
pub(crate) fn produce<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    record: &Record<'_>,
) -> Option<Result<(), RDKafkaErrorCode>> {
    let name = record.topic.as_bytes();
    if name.len() >= NAME_BUFFER {
        return None;
    }
    let mut buffer = [0u8; NAME_BUFFER];
    buffer[..name.len()].copy_from_slice(name);
    let topic = CStr::from_bytes_with_nul(&buffer[..=name.len()]).ok()?;
    let vus = [
        entry(
            rd_kafka_vtype_t::RD_KAFKA_VTYPE_TOPIC,
            rd_kafka_vu_s__bindgen_ty_1 { cstr: topic.as_ptr() },
        ),
        entry(
            rd_kafka_vtype_t::RD_KAFKA_VTYPE_PARTITION,
            rd_kafka_vu_s__bindgen_ty_1 {
                i32_: record.partition.unwrap_or(UNASSIGNED_PARTITION),
            },
        ),
        entry(
            rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
            rd_kafka_vu_s__bindgen_ty_1 {
                i: RD_KAFKA_MSG_F_COPY,
            },
        ),
        entry(
            rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
            rd_kafka_vu_s__bindgen_ty_1 {
                i64_: record.timestamp.unwrap_or(0),
            },
        ),
        bytes(rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE, record.value),
        bytes(rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY, record.key),
    ];
    // SAFETY: the client pointer is a live `rd_kafka_t` while `producer` is borrowed. Every
    // pointer in `vus` (the NUL-terminated name in `buffer`, the key and value slices) is
    // valid for the whole call, and nothing is kept after it: RD_KAFKA_MSG_F_COPY makes
    // librdkafka copy key and value into its message, and it copies the topic name into its
    // topic handle. No opaque is given (NULL), which is what rdkafka's delivery-report
    // handling reads back as the `()` of a `DeliveryOpaque = ()` context, as with `send`.
    // The error returned, if any, is ours and destroyed once.
    let code = unsafe {
        let error = rd_kafka_produceva(producer.client().native_ptr(), vus.as_ptr(), vus.len());
        if error.is_null() {
            None
        } else {
            let code = rd_kafka_error_code(error);
            rd_kafka_error_destroy(error);
            Some(code)
        }
    };
    Some(match code {
        None => Ok(()),
        Some(code) => Err(code.into()),
    })
}
