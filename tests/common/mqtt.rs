//! A real MQTT broker (Debian's mosquitto) for tests, with persistence so that a subscriber's
//! session survives a broker restart; and a subscriber that records every message.

use crate::ports::free_port;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    /// The plain listener (tests subscribe here).
    pub port: u16,
    /// A further listener's port and its settings (e.g. TLS), if any.
    pub extra: Option<(u16, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        Mosquitto::start_with(None).await
    }

    /// A broker with a second listener on a free port, configured by `settings` (mosquitto.conf
    /// lines that follow its `listener` line, e.g. `cafile`/`certfile`/`keyfile`).
    pub async fn start_with(settings: Option<&str>) -> Mosquitto {
        let mut m = Mosquitto {
            port: free_port(),
            extra: settings.map(|s| (free_port(), s.to_string())),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        m.restart().await;
        m
    }

    pub async fn restart(&mut self) {
        let d = self.dir.path();
        let conf = d.join("mosquitto.conf");
        let mut text = format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest none\nlistener {} 127.0.0.1\n",
            d.display(),
            self.port,
        );
        if let Some((port, settings)) = &self.extra {
            text.push_str(&format!("listener {port} 127.0.0.1\n{settings}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        self.child = Some(
            Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto runs (scripts/test installs it)"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the broker with SIGTERM (it saves its persistent state).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Subscribes (persistent session, QoS 1) to `topic` and keeps every payload, reconnecting
/// after broker restarts.
pub async fn subscribe(port: u16, topic: &str) -> Arc<Mutex<Vec<String>>> {
    subscribe_counting(port, topic).await.0
}

/// [`subscribe`], and how many times the subscription was acknowledged (1 after the first
/// connection; one more after every reconnection), so a test can wait for the subscriber to be
/// back before it lets a publisher reach a restarted broker.
pub async fn subscribe_counting(
    port: u16,
    topic: &str,
) -> (Arc<Mutex<Vec<String>>>, tokio::sync::watch::Receiver<u32>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut o = MqttOptions::new(format!("test-sub-{port}"), "127.0.0.1", port);
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(o, 64);
    let (g, t) = (got.clone(), topic.to_string());
    let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        let _client = client.clone();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(t.clone(), QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subscribed_tx.send_modify(|n| *n += 1);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    g.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&p.payload).to_string());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|n| *n > 0))
        .await
        .expect("subscribed")
        .unwrap();
    (got, subscribed)
}
