//! JSON request bodies of the services' write routes (reached through the gateway): comsrv's
//! point writes, rulesrv's rules, modsrv's models (expanded against the example templates),
//! alarmsrv's transitions and threshold shelving. Byte 0 chooses the route, the rest is the body.
//!
//! Whatever the body, the route's parser answers a value or a message (never a panic), and an
//! accepted body serialises back to one that is accepted again.

const TEMPLATES: &[(&str, &str)] = &[
    (
        "battery_template",
        include_str!("../../../config/modsrv/templates/battery_template.yaml"),
    ),
    (
        "pcs_template",
        include_str!("../../../config/modsrv/templates/pcs_template.yaml"),
    ),
];

pub fn check(data: &[u8]) {
    let Some((sel, body)) = data.split_first() else {
        return;
    };
    match sel % 6 {
        0 => {
            if let Ok(w) = comsrv::parse_write_body(body) {
                let again = serde_json::json!({"point_id": w.point_id, "value": w.value, "requested_by": w.requested_by});
                // A non-finite value cannot be sent as JSON at all.
                if w.value.is_finite() {
                    let back = comsrv::parse_write_body(again.to_string().as_bytes())
                        .expect("a serialised write body parses");
                    assert_eq!(
                        (back.point_id, back.requested_by),
                        (w.point_id, w.requested_by)
                    );
                }
            }
        }
        1 => match rulesrv::parse_rule(body) {
            Ok(r) => {
                let doc = serde_json::to_string(&r).expect("a rule serialises");
                rulesrv::parse_rule(doc.as_bytes())
                    .unwrap_or_else(|m| panic!("a stored rule is refused: {m}: {doc}"));
            }
            Err(m) => assert!(!m.is_empty()),
        },
        2 => {
            if let Ok(c) = modsrv::parse_create(body) {
                for (id, text) in TEMPLATES {
                    let t = modsrv::template::parse(id, text).expect("example template");
                    if let Ok(params) = t.resolve(&c.parameters) {
                        let _ = t.expand(&params);
                    }
                }
            }
        }
        5 => {
            if let Ok(ms) = alarmsrv::parse_shelve(body) {
                // The route adds it to the clock: bounded, so it cannot overflow.
                assert!(ms <= alarmsrv::MAX_SHELVE_MS);
            }
        }
        s => {
            let action = if s == 3 { "acknowledge" } else { "resolve" };
            if let Err((code, m)) = alarmsrv::parse_transition(action, body) {
                assert_eq!(code.as_u16(), 400, "{m}");
            }
        }
    }
}
