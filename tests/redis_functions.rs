//! Redis Functions (seed section 4.2): the Lua libraries in `scripts/redis-functions/`, called
//! directly with FCALL against a real Redis 7.

use voltage_tests::*;

/// The daemon's version check function is loaded and read-only.
#[tokio::test]
async fn functions_version_is_callable_read_only_after_load() {
    let env = TestEnv::new().await;
    let store = voltage_store::Store::connect(&env.redis_url, std::time::Duration::from_secs(2)).await.unwrap();
    store.load_functions().await.unwrap();
    let mut c = env.redis().await;
    let v: String = redis::cmd("FCALL_RO").arg("voltage_functions_version").arg(0).query_async(&mut c).await.unwrap();
    assert_eq!(v, voltage_store::functions::expected_version());
}
