//! The plugin contract implemented over an inverter's HTTP/JSON API.
//!
//! The device serves its values as one flat JSON object (`GET /api/v1/values` ->
//! `{"ac.power": 12.5, "running": true, ...}`) and takes writes one at a time (`PUT
//! /api/v1/values/{name}` with `{"value": 42}`). A point's address in the channel's mapping CSV is
//! the field name. One BatchRead is one GET, however many points it asks for.

use std::time::{SystemTime, UNIX_EPOCH};
use tonic::{Request, Response, Status};
use voltage_plugin::v1::{self, protocol_plugin_server::ProtocolPlugin, Quality};

pub struct HttpJson {
    /// Base URL of the device, e.g. `http://192.168.1.20`.
    pub device: String,
    pub http: reqwest::Client,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HttpJson {
    /// All values of the device, or why they could not be read.
    async fn values(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let url = format!("{}/api/v1/values", self.device);
        let r = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        match serde_json::from_slice(&body) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(format!("{url}: not a JSON object")),
        }
    }
}

/// A JSON field as a raw point value: numbers as they are, booleans as 0/1.
fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        v => v.as_f64(),
    }
}

#[tonic::async_trait]
impl ProtocolPlugin for HttpJson {
    async fn get_info(
        &self,
        _: Request<v1::GetInfoRequest>,
    ) -> Result<Response<v1::PluginInfo>, Status> {
        Ok(Response::new(v1::PluginInfo {
            name: "httpjson-inverter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocols: vec!["http-json".into()],
            capabilities: vec!["write".into()],
            contract: voltage_plugin::CONTRACT.into(),
        }))
    }

    async fn health_check(
        &self,
        _: Request<v1::HealthCheckRequest>,
    ) -> Result<Response<v1::HealthCheckResponse>, Status> {
        use v1::health_check_response::Status as S;
        let (status, message) = match self.values().await {
            Ok(_) => (S::Serving, String::new()),
            Err(e) => (S::DeviceUnreachable, e),
        };
        Ok(Response::new(v1::HealthCheckResponse {
            status: status as i32,
            message,
        }))
    }

    async fn batch_read(
        &self,
        req: Request<v1::BatchReadRequest>,
    ) -> Result<Response<v1::BatchReadResponse>, Status> {
        let req = req.into_inner();
        let device = self.values().await;
        let at = now_ms();
        let values = req
            .points
            .iter()
            .map(|p| {
                let (value, quality, error) = match &device {
                    Err(e) => (0.0, Quality::Bad, e.clone()),
                    Ok(m) => match m.get(&p.address).and_then(number) {
                        Some(v) => (v, Quality::Good, String::new()),
                        None => (
                            0.0,
                            Quality::Bad,
                            format!("no number {:?} on the device", p.address),
                        ),
                    },
                };
                v1::PointValue {
                    point_id: p.point_id,
                    point_type: p.point_type,
                    value,
                    quality: quality as i32,
                    timestamp_ms: at,
                    error,
                }
            })
            .collect();
        Ok(Response::new(v1::BatchReadResponse { values }))
    }

    async fn write(
        &self,
        req: Request<v1::WriteRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let req = req.into_inner();
        let Some(point) = req.point else {
            return Err(Status::invalid_argument("write without a point"));
        };
        let url = format!("{}/api/v1/values/{}", self.device, point.address);
        let body = serde_json::json!({ "value": req.value }).to_string();
        let (accepted, error) = match self.http.put(&url).body(body).send().await {
            Ok(r) if r.status().is_success() => (true, String::new()),
            Ok(r) => {
                let code = r.status();
                (
                    false,
                    format!("{url}: HTTP {code}: {}", r.text().await.unwrap_or_default()),
                )
            }
            Err(e) => (false, format!("{url}: {e}")),
        };
        Ok(Response::new(v1::WriteResponse { accepted, error }))
    }

    type SubscribeStream = futures::stream::Empty<Result<v1::PointValue, Status>>;

    async fn subscribe(
        &self,
        _: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented(
            "this device does not push; comsrv polls it",
        ))
    }
}
