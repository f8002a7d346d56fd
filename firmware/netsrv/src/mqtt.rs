//! The MQTT sink: one batch in flight at a time, QoS 1, cursor advanced on its PUBACK.
//!
//! On any connection error the client and its event loop are dropped and rebuilt after a
//! backoff, and the unacknowledged batch is sent again from the log (at-least-once, as QoS 1
//! promises): no second, hidden retransmission queue exists besides the log.

use crate::alarms::AlarmFeed;
use crate::{payload, stopped, Shared, SharedWal};
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::watch;
use voltage_core::config::MqttConfig;
use voltage_http::tls::{self, TlsError};

const SINK: &str = "mqtt";

/// The connection options; with `tls`, the TLS settings are read (their files too) on every
/// connection attempt, so a certificate provisioned or renewed on disk is picked up without a
/// restart.
fn options(c: &MqttConfig, device_id: &str) -> Result<MqttOptions, TlsError> {
    let id = c
        .client_id
        .clone()
        .unwrap_or_else(|| format!("voltage-{device_id}"));
    let mut o = MqttOptions::new(id, c.host.clone(), c.port());
    if let Some(t) = &c.tls {
        let config = tls::client_config(Some(t))?;
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(config)));
    }
    o.set_keep_alive(Duration::from_secs(c.keep_alive_s.max(5)));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_last_will(LastWill::new(
        format!("{}/{device_id}/status", c.prefix),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        o.set_credentials(u.clone(), p.clone());
    }
    Ok(o)
}

/// What a published message was, to match its PUBACK.
#[derive(Clone)]
enum Sent {
    Status,
    Batch { next: u64, records: u64 },
    Alarms { last: String, events: u64 },
}

pub async fn run(
    c: MqttConfig,
    device_id: String,
    wal: SharedWal,
    state: Shared,
    mut alarms: Option<AlarmFeed>,
    mut stop: watch::Receiver<bool>,
) {
    let topic = format!("{}/{device_id}/telemetry", c.prefix);
    let alarm_topic = format!("{}/{device_id}/alarm", c.prefix);
    let status_topic = format!("{}/{device_id}/status", c.prefix);
    let mut backoff = Duration::from_millis(250);
    'connection: loop {
        let opts = match options(&c, &device_id) {
            Ok(o) => o,
            Err(e) => {
                {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    if s.last_error.as_deref() != Some(&e.to_string()) {
                        tracing::error!(error = %e, "mqtt.tls unusable; the log keeps the data, retrying");
                    }
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => continue 'connection,
                    _ = stopped(&mut stop) => break 'connection,
                }
            }
        };
        let (client, mut events) = AsyncClient::new(opts, 16);
        let mut connected = false;
        let mut in_flight = false;
        let mut alarms_in_flight = false;
        let mut expected: VecDeque<Sent> = VecDeque::new();
        let mut pkids: HashMap<u16, Sent> = HashMap::new();
        loop {
            if connected && !in_flight {
                let max = c.batch_size;
                let batch = wal
                    .with(move |w| {
                        let cur = w.cursor(SINK)?;
                        w.read_from(cur, max)
                    })
                    .await;
                match batch {
                    Ok(recs) if !recs.is_empty() => {
                        let next = recs.last().map(|(s, _)| s + 1).unwrap_or(0);
                        let body = payload(&device_id, &recs);
                        if client
                            .publish(&topic, QoS::AtLeastOnce, false, body)
                            .await
                            .is_ok()
                        {
                            expected.push_back(Sent::Batch {
                                next,
                                records: recs.len() as u64,
                            });
                            in_flight = true;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "mqtt sink cannot read the log"),
                }
            }
            if connected && !alarms_in_flight {
                if let Some(feed) = alarms.as_mut() {
                    match feed.next(c.batch_size).await {
                        Ok(Some((last, events))) => {
                            let n = events.len() as u64;
                            let body =
                                serde_json::json!({"device_id": device_id, "events": events})
                                    .to_string();
                            if client
                                .publish(&alarm_topic, QoS::AtLeastOnce, false, body)
                                .await
                                .is_ok()
                            {
                                expected.push_back(Sent::Alarms { last, events: n });
                                alarms_in_flight = true;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "alarm events not readable; retrying");
                            feed.reset();
                        }
                    }
                    state.lock().unwrap_or_else(|p| p.into_inner()).alarm_gaps = feed.gaps;
                }
            }
            let idle = connected && (!in_flight || (alarms.is_some() && !alarms_in_flight));
            tokio::select! {
                ev = events.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff = Duration::from_millis(250);
                        tracing::info!(host = %c.host, port = c.port(), tls = c.tls.is_some(), "mqtt connected");
                        if client.publish(&status_topic, QoS::AtLeastOnce, true, "online").await.is_ok() {
                            expected.push_back(Sent::Status);
                        }
                        state.lock().unwrap_or_else(|p| p.into_inner()).connected = true;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(k) = expected.pop_front() {
                            pkids.insert(pkid, k);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let sent = pkids.remove(&ack.pkid);
                        if let (Some(Sent::Alarms { last, events }), Some(feed)) = (&sent, alarms.as_mut()) {
                            if let Err(e) = feed.acknowledged(last).await {
                                tracing::warn!(error = %e, "cannot advance the alarm cursor; the events may be sent again");
                                feed.reset();
                            }
                            state.lock().unwrap_or_else(|p| p.into_inner()).alarm_events += events;
                            alarms_in_flight = false;
                        }
                        if let Some(Sent::Batch { next, records }) = sent {
                            if let Err(e) = wal.with(move |w| w.commit(SINK, next)).await {
                                tracing::error!(error = %e, "cannot advance the mqtt cursor");
                            }
                            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                            s.sent_records += records;
                            s.messages += 1;
                            in_flight = false;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        {
                            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                            if s.connected || s.failures == 0 {
                                tracing::warn!(error = %e, "mqtt connection lost; the log keeps the data, reconnecting");
                            }
                            s.connected = false;
                            s.failures += 1;
                            s.last_error = Some(e.to_string());
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stopped(&mut stop) => break 'connection,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue 'connection;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(200)), if idle => {}
                _ = stopped(&mut stop) => {
                    let _ = client.disconnect().await;
                    break 'connection;
                }
            }
        }
    }
}
