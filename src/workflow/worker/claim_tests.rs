//! The claim an older master refuses: a worker that meets one claims without `record_grant`.

use super::*;
use crate::token::MasterError;

/// The claim body as a master before `record_grant` read it: unknown fields refused.
#[allow(dead_code)]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OlderClaim {
    owner: String,
    #[serde(default)]
    expiration_time: i64,
    #[serde(default)]
    lease_sec: Option<u64>,
    #[serde(default)]
    query: Option<serde_json::Value>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    pools: Option<Vec<String>>,
}

#[test]
fn the_refusal_of_an_older_master_is_told_from_other_input_errors() {
    let claim = QueryAndOwnRequest {
        record_grant: true,
        ..QueryAndOwnRequest::new("w", 0, ALL_RUNNABLE_JOBS, Some(1), Some(1000))
    };
    let body = serde_json::to_vec(&claim).unwrap();
    // Read as the master's `ApiJson` reads a body, and worded as it words the failure.
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let e = serde_path_to_error::deserialize::<_, OlderClaim>(de)
        .err()
        .unwrap();
    let refused = Error::Master(MasterError::input(format!("invalid request body: {e}")));
    assert!(refuses_field(&refused, "record_grant"), "{refused}");
    let other = Error::Master(MasterError::input("name_prefix is 600 bytes long"));
    assert!(!refuses_field(&other, "record_grant"));
    // The same claim without the field is what an older master takes.
    let older = QueryAndOwnRequest {
        record_grant: false,
        ..claim
    };
    let body = serde_json::to_vec(&older).unwrap();
    assert!(serde_json::from_slice::<OlderClaim>(&body).is_ok());
}
